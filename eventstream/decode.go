package eventstream

import "github.com/tributary-sync/tributary/core"

func decodeEffect(b []byte, e *Effect) error { return core.Unmarshal(b, e) }
