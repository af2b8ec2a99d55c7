// Package core is the pure heart of Tributary: the signed change, its
// content address, the hybrid logical clock, the CRDTs a document is
// merged from, and the membership rule that decides who may write. Nothing
// here does I/O, reads a clock or starts a goroutine; time comes in as an
// argument. That is what makes every replica reach the same state from the
// same changes. Storage lives in core/replica, schemas in core/schema.
//
// A writer builds a change on top of the DAG's heads and signs it:
//
//	c := &core.Change{Version: core.ChangeVersion, Space: space, Author: key.Public(),
//		Seq: seq, Prev: prev, Parents: heads, Height: maxParentHeight + 1,
//		HLC: core.NextHLC(maxParentClock, nowMillis, maxAhead), Ops: ops}
//	signed, id, err := core.Sign(c, key)
//
// A receiver trusts nothing it is sent:
//
//	c, id, signed, err := core.Open(envelopeBytes) // decode, canonical check, ZIP-215 signature
//	err = c.CheckShape()                          // limits, parents, sequence, op shapes
//	err = c.CheckPlacement(parentMetas, maxAhead) // height and clock against the parents
//
// and merges valid data ops into document state, in any causal order:
//
//	var st core.DocState
//	st.Apply(&c.Ops[i], core.WriteKey{HLC: c.HLC, Author: c.Author, Change: id, Op: uint32(i)}, classify, ancestry)
//	st.Conflicts() // concurrent overwrites still open
package core
