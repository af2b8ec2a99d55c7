package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/spf13/cobra"

	"github.com/tributary-sync/tributary/cmd/tributary/api"
	"github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/cmd/tributary/service"
	"github.com/tributary-sync/tributary/core/replica"
)

// Batch limits of `tributary load`.
const (
	loadDefaultBatch      = 2000
	loadDefaultBatchBytes = 2 << 20
	// loadMaxBatchBytes is the API's MaxBatchBytes (api.Config's default):
	// a batch must fit in one request to a running node.
	loadMaxBatchBytes = 8 << 20
)

// loadOptions are the flags of `tributary load`.
type loadOptions struct {
	batch      int
	batchBytes int64
	atomic     bool
}

func (c *cli) loadCmd() *cobra.Command {
	o := loadOptions{batch: loadDefaultBatch, batchBytes: loadDefaultBatchBytes}
	cmd := &cobra.Command{
		Use:   "load FILE|-",
		Short: "Write many documents from NDJSON (or a JSON array) of operations, in large atomic batches",
		Long: `Write the operations of FILE (- for stdin), one per line, in order:

  {"op":"put","collection":"Book","id":"b1","doc":{"title":"Kindred"}}
  {"op":"delete","collection":"Book","id":"b1"}

A put without "id" creates a document with a new id. A JSON array of the
same operations works too. The file is streamed: memory stays bounded
whatever its size.

Operations are committed in batches of --batch operations or --batch-bytes
bytes, whichever comes first. A batch is atomic: if a line does not parse,
or the space refuses one of its operations, nothing of that batch is
written, and the error names the line and which earlier batches are
already committed. A whole file is atomic only when it fits in one batch:
--atomic refuses (before writing anything) a file that does not. A batch
is at most 32 MiB (the API's request limit); the store takes a few MiB of
documents per transaction, hence the 2 MiB default.

Loading a file again is safe when its puts name their ids: the documents
end with the same values, and a delete of a document already gone is
skipped (counted as absent). Works with and without a running node.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.batch < 1 || o.batch > 1_000_000 {
				return fmt.Errorf("--batch %d: want 1 to 1000000 operations", o.batch)
			}
			if o.batchBytes < 1<<10 || o.batchBytes > loadMaxBatchBytes {
				return fmt.Errorf("--batch-bytes %d: want 1024 to %d (8 MiB, the API's batch limit)", o.batchBytes, loadMaxBatchBytes)
			}
			in, name, size, err := openLoadInput(args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			svc, done, err := c.service(cmd.Context())
			if err != nil {
				return err
			}
			defer done()
			if l, ok := svc.(*service.Local); ok {
				// Without a node, keep the space open across batches.
				reg := node.NewRegistry(l.Home)
				defer reg.Close()
				local := *l
				local.Open = reg.Open
				svc = &local
			}
			return c.load(cmd.Context(), svc, in, name, size, o)
		},
	}
	cmd.Flags().IntVar(&o.batch, "batch", o.batch, "operations per batch (each batch is atomic)")
	cmd.Flags().Int64Var(&o.batchBytes, "batch-bytes", o.batchBytes, "bytes per batch, at most 33554432 (32 MiB)")
	cmd.Flags().BoolVar(&o.atomic, "atomic", false, "all or nothing: refuse a file that does not fit in one batch")
	c.spaceFlag(cmd)
	return cmd
}

// openLoadInput opens FILE, or stdin for "-"; size is 0 when unknown.
func openLoadInput(arg string) (io.ReadCloser, string, int64, error) {
	if arg == "-" {
		return io.NopCloser(os.Stdin), "stdin", 0, nil
	}
	f, err := os.Open(arg)
	if err != nil {
		return nil, "", 0, fmt.Errorf("load: %w", err)
	}
	var size int64
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		size = fi.Size()
	}
	return f, arg, size, nil
}

// loadReport is what a load wrote.
type loadReport struct {
	Space      string  `json:"space,omitempty"`
	Input      string  `json:"input"`
	Bytes      int64   `json:"bytes"`
	Operations int     `json:"operations"`
	Batches    int     `json:"batches"`
	Created    int     `json:"created"`
	Updated    int     `json:"updated"`
	Unchanged  int     `json:"unchanged"`
	Deleted    int     `json:"deleted"`
	Absent     int     `json:"absent"` // deletes skipped: the document was already gone
	Changes    int     `json:"changes"`
	ElapsedMS  float64 `json:"elapsed_ms"`
	DocsPerSec float64 `json:"docs_per_sec"`
	// LastLine is the last line committed.
	LastLine int `json:"last_line"`
}

// loadBatch is a run of operations committed together.
type loadBatch struct {
	n        int // from 1
	muts     []replica.Mutation
	lines    []int // the input line of each operation
	from, to int   // the lines it spans
	bytes    int64
	err      error // the input failed after these operations (not committed)
}

// add appends an operation to the batch, which then spans its line; a
// zero op only extends the span (to the line that failed).
func (b *loadBatch) add(op loadOp, line int) {
	if b.from == 0 {
		b.from = line
	}
	b.to = line
	if op.line > 0 {
		b.muts = append(b.muts, op.mut)
		b.lines = append(b.lines, op.line)
		b.bytes += op.size
	}
}

func (c *cli) load(ctx context.Context, svc service.Service, in io.Reader, name string, size int64, o loadOptions) error {
	start := time.Now()
	rep := loadReport{Input: name}
	before, err := svc.Status(ctx, c.space)
	if err != nil {
		return err
	}
	rep.Space = before.Space.Space.String()
	counted := &countingReader{r: in}
	prog := c.startLoadProgress(counted, size, start)
	defer prog.stop()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan *loadBatch, 1) // one batch parsed ahead of the one committing
	go func() {
		defer close(batches)
		readBatches(ctx, newOpReader(counted), o, batches)
	}()
	for b := range batches {
		if b.err != nil && len(b.muts) == 0 && b.from == 0 {
			return fmt.Errorf("%w; %s", b.err, committedSoFar(&rep))
		}
		if b.err != nil {
			return loadFailed(b, b.err, &rep, "nothing of it was applied")
		}
		ops, last := len(b.lines), b.to
		if err := commitBatch(ctx, svc, c.space, b, &rep); err != nil {
			return err
		}
		rep.Batches++
		rep.Operations += ops
		rep.LastLine = last
		prog.ops.Store(int64(rep.Operations))
		prog.batches.Store(int64(rep.Batches))
	}
	prog.stop()
	after, err := svc.Status(ctx, c.space)
	if err != nil {
		return err
	}
	rep.Changes = after.Space.Changes - before.Space.Changes
	rep.Bytes = counted.n.Load()
	el := time.Since(start)
	rep.ElapsedMS = float64(el.Microseconds()) / 1000
	if s := el.Seconds(); s > 0 {
		rep.DocsPerSec = float64(rep.Operations) / s
	}
	return c.say(rep, "loaded %d operations from %s in %d batches (%s, %.0f docs/s): %d created, %d updated, %d unchanged, %d deleted, %d already absent; %d changes written",
		rep.Operations, name, rep.Batches, el.Round(time.Millisecond), rep.DocsPerSec, rep.Created, rep.Updated, rep.Unchanged, rep.Deleted, rep.Absent, rep.Changes)
}

// readBatches cuts the input into batches; a batch whose input failed
// carries the error and ends the stream.
func readBatches(ctx context.Context, r *opReader, o loadOptions, out chan<- *loadBatch) {
	b := &loadBatch{n: 1}
	send := func(x *loadBatch) bool {
		select {
		case out <- x:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		op, err := r.next()
		if errors.Is(err, io.EOF) {
			if len(b.lines) > 0 {
				send(b)
			}
			return
		}
		if err == nil && op.size > o.batchBytes {
			err = &lineError{line: op.line, err: fmt.Errorf("an operation of %d bytes does not fit in a batch of --batch-bytes %d", op.size, o.batchBytes)}
		}
		if err == nil && len(b.lines) > 0 && (len(b.lines) == o.batch || b.bytes+op.size > o.batchBytes) {
			if o.atomic {
				err = &lineError{line: op.line, err: fmt.Errorf("--atomic: the input does not fit in one batch (--batch %d operations, --batch-bytes %d); a load is atomic only within a batch", o.batch, o.batchBytes)}
			} else {
				if !send(b) {
					return
				}
				b = &loadBatch{n: b.n + 1}
			}
		}
		if err != nil {
			var le *lineError
			if errors.As(err, &le) {
				b.add(loadOp{}, le.line) // the batch spans up to the bad line
			}
			b.err = err
			send(b)
			return
		}
		b.add(op, op.line)
	}
}

// commitBatch writes one batch. A delete of a document already gone is
// dropped and the batch retried, so loading a file again succeeds; a busy
// node is retried (nothing was applied).
func commitBatch(ctx context.Context, svc service.Service, space string, b *loadBatch, rep *loadReport) error {
	busy := time.Now().Add(time.Minute)
	for {
		out, err := svc.Batch(ctx, space, b.muts)
		if err == nil {
			for _, r := range out.Results {
				switch {
				case r.Deleted:
					rep.Deleted++
				case r.Created:
					rep.Created++
				case r.Changed:
					rep.Updated++
				default:
					rep.Unchanged++
				}
			}
			return nil
		}
		var me *replica.MutationError
		if errors.As(err, &me) && me.Index >= 0 && me.Index < len(b.muts) {
			if b.muts[me.Index].Op == replica.MutDelete && errors.Is(err, replica.ErrNotFound) {
				b.muts = append(b.muts[:me.Index:me.Index], b.muts[me.Index+1:]...)
				b.lines = append(b.lines[:me.Index:me.Index], b.lines[me.Index+1:]...)
				rep.Absent++
				if len(b.muts) == 0 {
					return nil
				}
				continue
			}
			return loadFailed(b, &lineError{line: b.lines[me.Index], err: operationCause(me)}, rep, "nothing of it was applied")
		}
		if errors.Is(err, api.ErrBusy) && time.Now().Before(busy) {
			select {
			case <-ctx.Done():
				return loadFailed(b, ctx.Err(), rep, "nothing of it was applied")
			case <-time.After(time.Second):
			}
			continue
		}
		switch {
		case strings.Contains(err.Error(), badger.ErrTxnTooBig.Error()):
			err = fmt.Errorf("%d operations of %d bytes are too many for one transaction of the store: lower --batch-bytes or --batch (%w)", len(b.muts), b.bytes, err)
		case errors.Is(err, api.ErrTooLarge):
			err = fmt.Errorf("%d bytes are more than the node takes in one request: lower --batch-bytes (%w)", b.bytes, err)
		}
		applied := "nothing of it was applied"
		var re *api.RemoteError
		if _, remote := svc.(*api.Client); remote && !errors.As(err, &re) && ctx.Err() == nil {
			applied = "it may or may not have been applied (the node did not answer; puts with ids can be loaded again safely)"
		}
		return loadFailed(b, err, rep, applied)
	}
}

// operationCause is a refused operation's reason, without the
// "operation N:" a node's answer repeats.
func operationCause(me *replica.MutationError) error {
	var re *api.RemoteError
	if errors.As(me.Err, &re) {
		msg := strings.TrimPrefix(re.Message, fmt.Sprintf("operation %d: ", me.Index+1))
		return &api.RemoteError{Status: re.Status, Code: re.Code, Message: msg}
	}
	return me.Err
}

// loadFailed names what failed, the batch it was in, and what earlier
// batches are committed.
func loadFailed(b *loadBatch, err error, rep *loadReport, applied string) error {
	span := "no lines"
	switch {
	case b.from == b.to && b.from > 0:
		span = fmt.Sprintf("line %d", b.from)
	case b.from > 0:
		span = fmt.Sprintf("lines %d-%d", b.from, b.to)
	}
	return fmt.Errorf("%w; batch %d (%s): %s; %s", err, b.n, span, applied, committedSoFar(rep))
}

// committedSoFar says which batches are committed.
func committedSoFar(rep *loadReport) string {
	var committed string
	switch rep.Batches {
	case 0:
		committed = "nothing was committed before it"
	case 1:
		committed = fmt.Sprintf("batch 1 (lines 1-%d, %d operations) is committed", rep.LastLine, rep.Operations)
	default:
		committed = fmt.Sprintf("batches 1-%d (lines 1-%d, %d operations) are committed", rep.Batches, rep.LastLine, rep.Operations)
	}
	if rep.Batches > 0 {
		committed += fmt.Sprintf("; continue from line %d", rep.LastLine+1)
	}
	return committed
}

// lineError names the input line an error is about.
type lineError struct {
	line int
	err  error
}

func (e *lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *lineError) Unwrap() error { return e.err }

// loadOp is one operation of the input.
type loadOp struct {
	mut  replica.Mutation
	line int
	size int64 // bound on its size in a batch request
}

// opReader reads operations, one at a time, from NDJSON or a JSON array
// (told apart by the first character), naming each by its line.
type opReader struct {
	br    *bufio.Reader
	start bool
	// NDJSON
	sc   *bufio.Scanner
	line int
	// JSON array
	dec *json.Decoder
	nl  *newlineReader
}

func newOpReader(r io.Reader) *opReader {
	return &opReader{br: bufio.NewReaderSize(r, 1<<16)}
}

func (r *opReader) next() (loadOp, error) {
	if !r.start {
		r.start = true
		if err := r.detect(); err != nil {
			return loadOp{}, err
		}
	}
	if r.dec != nil {
		return r.nextElement()
	}
	return r.nextLine()
}

// detect looks at the first character that is not white space: '['
// starts a JSON array, anything else NDJSON. Nothing is consumed, so line
// numbers count from the input's start.
func (r *opReader) detect() error {
look:
	for i := 0; ; i++ {
		b, err := r.br.Peek(i + 1)
		if len(b) <= i {
			if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("read input: %w", err)
			}
			break
		}
		switch b[i] {
		case ' ', '\t', '\r', '\n':
		case '[':
			r.nl = &newlineReader{r: r.br}
			r.dec = json.NewDecoder(r.nl)
			r.dec.UseNumber()
			if _, err := r.dec.Token(); err != nil {
				return &lineError{line: r.nl.lineAt(r.dec.InputOffset()), err: fmt.Errorf("not JSON: %v", err)}
			}
			return nil
		default:
			break look
		}
	}
	r.sc = r.scanner()
	return nil
}

func (r *opReader) scanner() *bufio.Scanner {
	sc := bufio.NewScanner(r.br)
	sc.Buffer(make([]byte, 0, 1<<16), loadMaxBatchBytes)
	return sc
}

func (r *opReader) nextLine() (loadOp, error) {
	for r.sc.Scan() {
		r.line++
		line := bytes.TrimSpace(r.sc.Bytes())
		if len(line) == 0 {
			continue
		}
		m, err := parseLoadOp(line)
		if err != nil {
			return loadOp{}, &lineError{line: r.line, err: err}
		}
		return loadOp{mut: m, line: r.line, size: encodedBound(line)}, nil
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return loadOp{}, &lineError{line: r.line + 1, err: fmt.Errorf("longer than %d bytes (8 MiB, the API's batch limit)", loadMaxBatchBytes)}
		}
		return loadOp{}, fmt.Errorf("read input after line %d: %w", r.line, err)
	}
	return loadOp{}, io.EOF
}

func (r *opReader) nextElement() (loadOp, error) {
	if !r.dec.More() {
		if _, err := r.dec.Token(); err != nil { // the closing ]
			return loadOp{}, &lineError{line: r.nl.lineAt(r.dec.InputOffset()), err: fmt.Errorf("not JSON: %v", err)}
		}
		if _, err := r.dec.Token(); !errors.Is(err, io.EOF) {
			return loadOp{}, &lineError{line: r.nl.lineAt(r.dec.InputOffset()), err: errors.New("data after the closing ]")}
		}
		return loadOp{}, io.EOF
	}
	var raw json.RawMessage
	if err := r.dec.Decode(&raw); err != nil {
		off := r.dec.InputOffset()
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = se.Offset
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return loadOp{}, &lineError{line: r.nl.lineAt(off), err: errors.New("the array is not closed")}
		}
		return loadOp{}, &lineError{line: r.nl.lineAt(off), err: fmt.Errorf("not JSON: %v", err)}
	}
	line := r.nl.lineAt(r.dec.InputOffset() - int64(len(raw)))
	m, err := parseLoadOp(raw)
	if err != nil {
		return loadOp{}, &lineError{line: line, err: err}
	}
	return loadOp{mut: m, line: line, size: encodedBound(raw)}, nil
}

// parseLoadOp decodes one operation, keeping numbers exact and refusing
// fields a Mutation does not have (a misspelt "doc" would write nothing).
func parseLoadOp(b []byte) (replica.Mutation, error) {
	var m replica.Mutation
	if !utf8.Valid(b) {
		return m, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("not an operation: %v", err)
	}
	if dec.More() {
		return m, errors.New("not an operation: data after the object")
	}
	if m.Op != replica.MutPut && m.Op != replica.MutDelete {
		return m, fmt.Errorf(`"op" %q: want "put" or "delete"`, m.Op)
	}
	return m, nil
}

// encodedBound bounds the size of an operation as the API client sends
// it (re-encoded as one NDJSON line): never more than the input, but for
// the characters Go's encoder escapes (<, >, & and U+2028, U+2029).
func encodedBound(b []byte) int64 {
	n := int64(len(b)) + 1
	n += 5 * int64(bytes.Count(b, []byte("<"))+bytes.Count(b, []byte(">"))+bytes.Count(b, []byte("&")))
	n += 3 * int64(bytes.Count(b, []byte("\u2028"))+bytes.Count(b, []byte("\u2029")))
	return n
}

// newlineReader remembers where the newlines it passed on are, until
// lineAt moves past them: the line of any later offset, in memory bounded
// by what the JSON decoder reads ahead.
type newlineReader struct {
	r     io.Reader
	off   int64   // bytes read
	nl    []int64 // offsets of newlines not yet counted
	lines int     // newlines counted
}

func (n *newlineReader) Read(p []byte) (int, error) {
	k, err := n.r.Read(p)
	for i, c := range p[:k] {
		if c == '\n' {
			n.nl = append(n.nl, n.off+int64(i))
		}
	}
	n.off += int64(k)
	return k, err
}

// lineAt is the line (from 1) of offset off; offsets must not decrease.
func (n *newlineReader) lineAt(off int64) int {
	i := 0
	for i < len(n.nl) && n.nl[i] < off {
		i++
	}
	n.lines += i
	n.nl = n.nl[i:]
	return n.lines + 1
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// loadProgress shows how far a load is on stderr: a bar redrawn in place
// on a terminal, a plain line every few seconds otherwise, nothing with
// --json.
type loadProgress struct {
	ops, batches atomic.Int64
	done         chan struct{}
	stopped      chan struct{}
}

func (c *cli) startLoadProgress(in *countingReader, size int64, start time.Time) *loadProgress {
	p := &loadProgress{done: make(chan struct{}), stopped: make(chan struct{})}
	f, isFile := c.errOut.(*os.File)
	if c.json || c.errOut == nil {
		close(p.stopped)
		return p
	}
	tty := false
	if isFile {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	every := 2 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				if tty {
					fmt.Fprint(c.errOut, "\r\033[K")
				}
				return
			case <-t.C:
			}
			line := progressLine(in.n.Load(), size, p.ops.Load(), p.batches.Load(), time.Since(start))
			if tty {
				fmt.Fprint(c.errOut, "\r\033[K"+line)
			} else {
				fmt.Fprintln(c.errOut, "load: "+line)
			}
		}
	}()
	return p
}

// stop ends the display (idempotent).
func (p *loadProgress) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	<-p.stopped
}

func progressLine(read, size, ops, batches int64, el time.Duration) string {
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(ops) / s
	}
	tail := fmt.Sprintf("%d operations committed in %d batches, %.0f docs/s", ops, batches, rate)
	if size <= 0 {
		return fmt.Sprintf("%s read; %s", humanBytes(read), tail)
	}
	frac := min(float64(read)/float64(size), 1)
	const width = 30
	fill := int(frac * width)
	return fmt.Sprintf("[%s%s] %3.0f%% %s/%s; %s", strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, humanBytes(read), humanBytes(size), tail)
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
