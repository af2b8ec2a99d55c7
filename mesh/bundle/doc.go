// Package bundle carries changes as files, for sneaker-net: Write puts a
// set of signed changes in one file, Read gets them back and verifies every
// one (format, checksum, decoding, signature, shape) before returning
// anything, so a caller applies all of a file or nothing of it.
//
//	envs, _ := rep.Export(sinceHeads)
//	_ = bundle.WriteFile("out.trb", bundle.Bundle{Space: space, Since: sinceHeads, Changes: envs})
//	b, err := bundle.ReadFile("out.trb") // err names the first bad change
//	report, _ := rep.Receive(ctx, b.Changes)
package bundle
