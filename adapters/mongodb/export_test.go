package mongodb

// SetRewrite switches a sink between guarded writes (false, the path
// MongoDB takes) and batch rewrites (true, FerretDB's), so that the tests
// run both against FerretDB.
func SetRewrite(s *Sink, on bool) { s.rewrite = on }

// Rewrite reports the sink's write path.
func Rewrite(s *Sink) bool { return s.rewrite }
