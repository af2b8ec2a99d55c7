// Package memory is an in-memory view of a space: a Sink that keeps the
// newest post-image of every document, answers get and field-equality
// queries, and notifies subscribers of every change it applies.
//
//	view := memory.New("my-view", memory.Options{})
//	runner, _ := checkpoint.New(checkpoint.DefaultConfig(), space.Effects, view, space, checkpoint.NewMemoryParking())
//	runner.Start(ctx); defer runner.Close()
//	doc, ok := view.Get("Book", "b1")
//	books := view.Query("Book", map[string]any{"year": int64(1999)})
//	updates, cancel := view.Subscribe(64); defer cancel()
//
// The view and its checkpoint change together under one lock, so it is
// exactly-once within the process; it starts empty (checkpoint 0) and is
// refilled from the effect log when the process restarts. Options.Validate
// lets an application refuse documents (the runner parks them); a Redo
// batch (tributary sink retry) is applied although the checkpoint covers
// it. Values are the effects' canonical values: an enum's value is the
// text of its name, a named scalar's that of its base kind. A view is a target of its own, reached by no other process: it has
// no claim, fence or name mapping, and keeps every name as it is.
package memory
