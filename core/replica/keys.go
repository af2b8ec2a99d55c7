package replica

import (
	"encoding/binary"

	"github.com/tributary-sync/tributary/core"
)

// Badger key layout. One DB per space holds the op-log, the materialized
// documents and (under the prefix the caller passes to its hook) the effect
// log, so a change, its state and its effects commit together.
//
//	g/genesis                     genesis change ID
//	c/<id>                        signed envelope
//	m/<id>                        changeMeta
//	v/<id>                        version vector
//	a/<author><seq><id>           by author and sequence (equivocation, prev)
//	h/<height><id>                by height (reconciliation ranges, export)
//	H/<id>                        current heads
//	o/<id>                        orphan envelope (parents missing)
//	A/<author>                    local author index for version vectors
//	d/<coll>\0<doc>               DocState
//	x/<coll>\0<doc>\0<height><id> changes that touched a document
//	r/<coll>\0<doc>               changes that created a document (ID list)
//	s/<author><seq>               first change seen with that sequence
//	f/<coll>\0<doc>               document has open conflicts
//	q/<author><id>                equivocation evidence
//	i/<coll>\0<field>\0<value><doc> documents by field value (fields rules look up)
//	j/<coll>\0<doc>\0<field>\0<value> the same, by document
//	I/<coll>\0<field>              the field is indexed
//	k/<read key><id>              changes whose rules read a key (see readKey)
//	w/<id><id>                    a conflict between two concurrent changes
//
// e/ (the effect log) and p/ (parked effects) belong to the node.
//
// <value> is the canonical CBOR of the value with a 4-byte length before it.
const (
	pGenesis  = "g/genesis"
	pChange   = "c/"
	pMeta     = "m/"
	pVV       = "v/"
	pAuthor   = "a/"
	pHeight   = "h/"
	pHead     = "H/"
	pOrphan   = "o/"
	pAuthorIx = "A/"
	pDoc      = "d/"
	pDocIndex = "x/"
	pCreate   = "r/"
	pConflict = "f/"
	pEquivoc  = "q/"
	pSeq      = "s/"
	pValue    = "i/"
	pDocValue = "j/"
	pIndexed  = "I/"
	pReader   = "k/"
	pEdge     = "w/"
)

func idKey(prefix string, id core.ID) []byte {
	return append([]byte(prefix), id[:]...)
}

func authorKey(a core.PublicKey, seq uint64, id *core.ID) []byte {
	k := append([]byte(pAuthor), a[:]...)
	if seq > 0 {
		k = binary.BigEndian.AppendUint64(k, seq)
	}
	if id != nil {
		k = append(k, id[:]...)
	}
	return k
}

func heightKey(h uint64, id core.ID) []byte {
	k := binary.BigEndian.AppendUint64([]byte(pHeight), h)
	return append(k, id[:]...)
}

// docName is "<coll>\0<doc>": collections and ids never hold NUL (the
// schema allows identifiers only; ids are checked on write).
func docName(coll, doc string) string { return coll + "\x00" + doc }

func docKey(coll, doc string) []byte { return []byte(pDoc + docName(coll, doc)) }

func docIndexKey(coll, doc string, h uint64, id core.ID) []byte {
	k := append([]byte(pDocIndex+docName(coll, doc)), 0)
	k = binary.BigEndian.AppendUint64(k, h)
	return append(k, id[:]...)
}

func docIndexPrefix(coll, doc string) []byte {
	return append([]byte(pDocIndex+docName(coll, doc)), 0)
}

func createKey(coll, doc string) []byte {
	return []byte(pCreate + docName(coll, doc))
}

func seqKey(a core.PublicKey, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(pSeq), a[:]...), seq)
}

func appendValue(k []byte, v []byte) []byte {
	k = binary.BigEndian.AppendUint32(k, uint32(len(v)))
	return append(k, v...)
}

// valuePrefix is the i/ prefix of the documents of coll whose field holds
// the value encoded as v.
func valuePrefix(coll, field string, v []byte) []byte {
	return appendValue([]byte(pValue+coll+"\x00"+field+"\x00"), v)
}

func docValueKey(coll, doc, field string, v []byte) []byte {
	return appendValue([]byte(pDocValue+docName(coll, doc)+"\x00"+field+"\x00"), v)
}

func docValuePrefix(coll, doc string) []byte {
	return []byte(pDocValue + docName(coll, doc) + "\x00")
}

// A read key names what a rule read: a document ("d" coll \0 doc \0) or
// the documents whose field holds a value ("v" coll \0 field \0 value).
func docReadKey(coll, doc string) string { return "d" + docName(coll, doc) + "\x00" }

func valueReadKey(coll, field string, v []byte) string {
	return string(appendValue([]byte("v"+coll+"\x00"+field+"\x00"), v))
}

func readerPrefix(key string) []byte { return []byte(pReader + key) }

func readerKey(key string, id core.ID) []byte { return append(readerPrefix(key), id[:]...) }

func edgeKey(a, b core.ID) []byte {
	if a.Compare(b) > 0 {
		a, b = b, a
	}
	return append(append([]byte(pEdge), a[:]...), b[:]...)
}
