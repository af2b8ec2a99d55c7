package core

import "fmt"

// Verified is a change whose envelope decoded, passed Check and whose
// signature verified, with its ID. Only Open-like functions of this
// package make one, so a Verified is proof for whoever it is handed to
// (a replica, from a transport that verified at its door) that the change
// needs no second verification. The zero Verified is no proof: Change
// returns nil.
type Verified struct {
	signed Signed
	change *Change
	id     ID
}

// Signed returns the envelope.
func (v Verified) Signed() Signed { return v.signed }

// Change returns the decoded change; nil for the zero Verified.
func (v Verified) Change() *Change { return v.change }

// ID returns the change's ID.
func (v Verified) ID() ID { return v.id }

// OpenBatch is Open for many envelopes with one batch signature
// verification (VerifyBatch): per input, the Verified change or the
// error Open would give. It does no I/O and starts no goroutines; callers
// spread large batches over cores by calling it on parts.
func OpenBatch(envelopes [][]byte) ([]Verified, []error) {
	out := make([]Verified, len(envelopes))
	errs := make([]error, len(envelopes))
	idx := make([]int, 0, len(envelopes))
	pubs := make([]PublicKey, 0, len(envelopes))
	ids := make([]ID, 0, len(envelopes))
	sigs := make([][]byte, 0, len(envelopes))
	for i, b := range envelopes {
		s, err := DecodeSigned(b)
		if err != nil {
			errs[i] = err
			continue
		}
		c, err := s.Check()
		if err != nil {
			errs[i] = err
			continue
		}
		id := s.ID()
		out[i] = Verified{signed: s, change: c, id: id}
		idx = append(idx, i)
		pubs, ids, sigs = append(pubs, c.Author), append(ids, id), append(sigs, s.Sig)
	}
	for j, ok := range VerifyBatch(pubs, ids, sigs) {
		if !ok {
			i := idx[j]
			errs[i] = fmt.Errorf("change %s: %w", out[i].id, ErrBadSignature)
			out[i] = Verified{}
		}
	}
	return out, errs
}
