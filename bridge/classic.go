package bridge

import "context"

// Import returns a module of the peer: classic mode's root.getmodule(name), as
// conn.modules[name] in rpyc.classic.
func (c *Conn) Import(ctx context.Context, module string) (*Ref, error) {
	root, err := c.Root(ctx)
	if err != nil {
		return nil, err
	}
	v, err := root.CallAttr(ctx, "getmodule", module)
	if err != nil {
		return nil, err
	}
	r, ok := v.(*Ref)
	if !ok {
		return nil, &ProtocolError{Msg: "getmodule returned a value, not a module"}
	}
	return r, nil
}

// Eval evaluates a Python expression in the peer's classic namespace.
func (c *Conn) Eval(ctx context.Context, expr string) (any, error) {
	root, err := c.Root(ctx)
	if err != nil {
		return nil, err
	}
	return root.CallAttr(ctx, "eval", expr)
}

// Execute runs Python statements in the peer's classic namespace.
func (c *Conn) Execute(ctx context.Context, code string) error {
	root, err := c.Root(ctx)
	if err != nil {
		return err
	}
	_, err = root.CallAttr(ctx, "execute", code)
	return err
}

// Value fetches obj as plain data (lists as []any, dicts as maps, tuples, scalars):
// the by-value extension of pybridge workers in mode "go" (root.value).
func (c *Conn) Value(ctx context.Context, obj *Ref) (any, error) {
	root, err := c.Root(ctx)
	if err != nil {
		return nil, err
	}
	return root.CallAttr(ctx, "value", obj)
}
