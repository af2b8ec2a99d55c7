// Package bundle carries changes as files, for sneaker-net, in memory
// bounded by one change (writing) or one batch (applying), whatever the
// size of the file.
//
// An import is two passes. The first (Verify, run by OpenFile and Spool)
// reads the whole file and checks everything before anything is applied:
// format, checksum, and every change's decoding, shape, space and
// signature (verified in batches). It fails naming the first problem:
// ErrNotBundle, ErrCorrupt for a truncated or altered file, ErrBadChange
// for an intact file holding a bad change. The second pass (File.Import)
// reads the file again and hands the replica's Receive bounded batches in
// the file's height order; each batch is checked against a fingerprint
// taken in the first pass, so only what was verified is applied
// (ErrChanged otherwise). Importing the same bundle again changes nothing.
//
//	n, err := bundle.ExportFile(ctx, "out.trb", bundle.Header{Space: space, Since: peerHeads}, rep)
//	n, err = bundle.Export(ctx, w, header, rep) // to any io.Writer (an HTTP response)
//
//	f, err := bundle.OpenFile(ctx, "out.trb") // or OpenReader(ctx, req.Body, spoolDir, bundle.MaxSize)
//	if err != nil { ... }                     // names the first problem; nothing applied
//	defer f.Close()
//	res, err := f.Import(ctx, rep, progress)  // err: the store, or the file changed
//	err = res.Err()                           // ErrRefused: changes the replica refused
//
// # Format, version 2 (written)
//
//	"TRIBUTARY-BUNDLE" 0x02
//	uint32 n, n bytes     header: canonical CBOR [space, [since heads]] (n <= MaxHeaderBytes)
//	uint32 n, n bytes     one signed envelope per change, in height order (0 < n <= MaxEnvelopeBytes)
//	...
//	uint32 0              end of the changes
//	uint64 count          number of changes
//	[32]byte              SHA-256 of every byte before it
//
// Integers are big-endian. A Writer streams this to any io.Writer.
//
// # Version 1 (read)
//
// Files written by earlier builds ("TRIBUTARY-BUNDLE" 0x01, one canonical
// CBOR array [space, since, [envelopes]], SHA-256) are read in bounded
// memory too: the outer array is parsed by hand so that envelopes stream
// like version 2 frames, under the same limits.
package bundle
