package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run measured.
type Report struct {
	Started  time.Time `json:"started"`
	Elapsed  float64   `json:"elapsed_s"`
	Machine  Machine   `json:"machine"`
	Config   Config    `json:"config"`
	Results  []Result  `json:"results"`
	Profiles []string  `json:"profiles,omitempty"`
	Failures []Failure `json:"failures,omitempty"`
}

// Result is one figure of the product path, beside its raw baseline.
type Result struct {
	Scenario string    `json:"scenario"`
	Case     string    `json:"case,omitempty"`
	Metric   string    `json:"metric"`
	Unit     string    `json:"unit"` // docs/s, rows/s, ms, s, MiB, bytes, count
	Value    float64   `json:"value"`
	Baseline *Baseline `json:"baseline,omitempty"`
	// Ratio is Value / Baseline.Value.
	Ratio float64 `json:"ratio,omitempty"`
	Note  string  `json:"note,omitempty"`
}

// Baseline is the raw figure a result is measured against.
type Baseline struct {
	What  string  `json:"what"`
	Value float64 `json:"value"`
}

// Failure is a scenario that did not finish.
type Failure struct {
	Scenario string `json:"scenario"`
	Error    string `json:"error"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the machine, then one line per result.
func (r *Report) WriteTable(w io.Writer) error {
	m := r.Machine
	commit := m.Commit
	if m.Modified {
		commit += " (modified)"
	}
	if m.CommitFrom != "" && m.CommitFrom != "build" {
		commit += " (git in " + m.CommitFrom + ")"
	}
	fmt.Fprintf(w, "tributary bench, %s, %.0fs\n", r.Started.UTC().Format(time.RFC3339), r.Elapsed)
	fmt.Fprintf(w, "machine: %d CPUs, %s, %s memory; %s %s; commit %s\n\n", m.CPUs, orUnknown(m.Model), mib(float64(m.MemBytes)), m.Go, m.OS, commit)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tCASE\tMETRIC\tPRODUCT\tBASELINE\tRATIO\tBASELINE IS\tNOTE")
	for _, x := range r.Results {
		base, ratio, what := "-", "-", ""
		if x.Baseline != nil {
			base, what = format(x.Baseline.Value, x.Unit), x.Baseline.What
			if x.Baseline.Value != 0 {
				ratio = strconv.FormatFloat(x.Ratio, 'f', 3, 64)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", x.Scenario, x.Case, x.Metric, format(x.Value, x.Unit), base, ratio, what, x.Note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAILED %s: %s\n", f.Scenario, f.Error)
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(w, "profile: %s\n", p)
	}
	return nil
}

// format shows a value in its unit.
func format(v float64, unit string) string {
	switch unit {
	case "ms":
		return strconv.FormatFloat(v, 'f', 2, 64) + " ms"
	case "s":
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	case "MiB":
		return strconv.FormatFloat(v, 'f', 1, 64) + " MiB"
	case "count", "bytes":
		return strconv.FormatFloat(v, 'f', 0, 64) + " " + strings.TrimSuffix(unit, "count")
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " " + unit
}

func mib(b float64) string { return strconv.FormatFloat(b/(1<<20), 'f', 0, 64) + " MiB" }

func orUnknown(s string) string {
	if s == "" {
		return "unknown CPU"
	}
	return s
}
