package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
)

// schemaSDL is the space every scenario writes to: one collection of
// small documents (about 150 bytes of JSON each).
const schemaSDL = `# tributary bench
type Item @collection {
  name: String! @length(min: 1, max: 200)
  n: Int
  score: Float
  note: String
}
`

// collection is the collection of schemaSDL.
const collection = "Item"

// item is generated document number i of a run: the same seed gives the
// same documents.
type item struct {
	ID    string
	Name  string
	N     int64
	Score float64
	Note  string
}

const letters = "abcdefghijklmnopqrstuvwxyz      "

func genItem(seed uint64, prefix string, i int) item {
	r := rand.New(rand.NewPCG(seed, uint64(i)))
	note := make([]byte, 48+r.IntN(32))
	for k := range note {
		note[k] = letters[r.IntN(len(letters))]
	}
	return item{
		ID:    fmt.Sprintf("%s%08d", prefix, i),
		Name:  fmt.Sprintf("item %d of the %s run", i, prefix),
		N:     int64(i),
		Score: float64(r.IntN(1_000_000)) / 1000,
		Note:  string(note),
	}
}

// fields is the document's JSON object, without its id.
func (it item) fields() map[string]any {
	return map[string]any{"name": it.Name, "n": it.N, "score": it.Score, "note": it.Note}
}

// body is the document as a PUT body.
func (it item) body() []byte {
	b, _ := json.Marshal(it.fields())
	return b
}

// line is the document as a put operation of `tributary load`.
func (it item) line() []byte {
	b, _ := json.Marshal(map[string]any{"op": "put", "collection": collection, "id": it.ID, "doc": it.fields()})
	return b
}

// mutationFields are the fields as the API decodes them (numbers kept
// as json.Number).
func (it item) mutationFields() map[string]any {
	return map[string]any{"name": it.Name, "n": json.Number(strconv.FormatInt(it.N, 10)),
		"score": json.Number(strconv.FormatFloat(it.Score, 'g', -1, 64)), "note": it.Note}
}

// writeItems writes n documents as NDJSON put operations and returns the
// file's size.
func writeItems(path string, seed uint64, prefix string, n int) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var size int64
	for i := range n {
		b := genItem(seed, prefix, i).line()
		w.Write(b)
		w.WriteByte('\n')
		size += int64(len(b)) + 1
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	return size, f.Close()
}
