package bridge

import (
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"

	"github.com/pybridge/pybridge/bridge/brine"
	"github.com/pybridge/pybridge/bridge/wire"
)

// Serving the peer's requests on the Go values this side handed over. Each request runs
// on its own goroutine (see readLoop). The peer sees a Go func as a rpyc netref of
// class "builtins.function" and any other Go value as one of "builtins.object": rpyc
// builds both proxies from its own builtin class cache and never sends INSPECT for
// them, so what Python asks of a Go value is GETATTR/CALL/CALLATTR plus the handlers
// behind object's magic methods (REPR, STR, HASH, DIR, CMP). A Go value's exported
// methods and struct fields are its Python attributes, under their Go names.

func (c *Conn) serve(m wire.Message) {
	t, body := c.reply(m)
	if err := c.send(t, m.Seq, body); err != nil {
		c.log.Debug("bridge: reply not sent", "seq", m.Seq, "err", err)
	}
}

// reply handles a request and returns the reply's type and body.
func (c *Conn) reply(m wire.Message) (wire.MsgType, any) {
	result, err := c.handle(m.Body)
	var body any
	t := wire.MsgReply
	if err == nil {
		body, err = c.box(result)
	}
	if err != nil {
		t = wire.MsgException
		body = dumpException(err)
	}
	return t, body
}

// attrError is Python's AttributeError, so hasattr() and getattr(obj, name, default)
// work on Go values.
type attrError struct{ msg string }

func (e *attrError) Error() string                { return e.msg }
func (e *attrError) PythonType() (string, string) { return "builtins", "AttributeError" }

// typeError is Python's TypeError: a call with arguments a Go func cannot take.
type typeError struct{ msg string }

func (e *typeError) Error() string                { return e.msg }
func (e *typeError) PythonType() (string, string) { return "builtins", "TypeError" }

// panicError is a Go panic inside a served request, sent as RuntimeError with the Go
// stack as its remote traceback.
type panicError struct {
	value any
	stack string
}

func (e *panicError) Error() string       { return fmt.Sprintf("Go panic serving a request: %v", e.value) }
func (e *panicError) GoTraceback() string { return e.stack }

func (c *Conn) handle(body any) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{value: p, stack: string(debug.Stack())}
		}
	}()
	req, ok := body.(brine.Tuple)
	if !ok || len(req) != 2 {
		return nil, &ProtocolError{Msg: "malformed request"}
	}
	h, _ := req[0].(int64)
	if wire.Handler(h) == wire.HandleDel {
		return nil, c.handleDel(req[1])
	}
	v, err := c.unbox(req[1])
	if err != nil {
		return nil, err
	}
	args, _ := v.(brine.Tuple)
	arg := func(i int) any {
		if i < len(args) {
			return args[i]
		}
		return nil
	}
	name, _ := arg(1).(string)
	switch wire.Handler(h) {
	case wire.HandlePing:
		return arg(0), nil
	case wire.HandleClose:
		go c.shutdown(ErrConnClosed)
		return nil, nil
	case wire.HandleGetRoot:
		return c.cfg.Root, nil
	case wire.HandleCall:
		return callGo(arg(0), arg(1), arg(2))
	case wire.HandleCallAttr:
		switch name {
		case "__call__":
			return callGo(arg(0), arg(2), arg(3))
		case "__repr__", "__str__":
			return goRepr(arg(0)), nil
		case "__dir__":
			return goDir(arg(0)), nil
		}
		m, err := goAttr(arg(0), name)
		if err != nil {
			return nil, err
		}
		return callGo(m, arg(2), arg(3))
	case wire.HandleGetAttr:
		return goAttr(arg(0), name)
	case wire.HandleSetAttr:
		return nil, setGoAttr(arg(0), name, arg(2))
	case wire.HandleDelAttr:
		return nil, &attrError{fmt.Sprintf("cannot delete attribute %q of Go %T", name, arg(0))}
	case wire.HandleRepr, wire.HandleStr:
		return goRepr(arg(0)), nil
	case wire.HandleHash:
		// the object's instance id is stable while the peer holds it, for any Go value
		return c.objects.idOf(req[1])
	case wire.HandleDir:
		return goDir(arg(0)), nil
	case wire.HandleCmp:
		op, _ := arg(2).(string)
		same := sameGoValue(arg(0), arg(1))
		switch op {
		case "__eq__":
			return same, nil
		case "__ne__":
			return !same, nil
		}
		return brine.NotImplemented, nil
	case wire.HandleInspect:
		return brine.Tuple{brine.Tuple{"__call__", "calls the Go function"}}, nil
	}
	return nil, fmt.Errorf("request %v is not served on Go values", wire.Handler(h))
}

func (c *Conn) handleDel(boxed any) error {
	// DEL names the object by its id_pack; read it before unboxing (a Go func, once
	// unboxed, cannot be looked up again)
	t, _ := boxed.(brine.Tuple)
	if len(t) == 2 {
		if items, ok := t[1].(brine.Tuple); ok && len(items) == 2 {
			ref, _ := items[0].(brine.Tuple)
			cnt, _ := items[1].(brine.Tuple)
			if len(ref) == 2 && len(cnt) == 2 {
				n, _ := cnt[1].(int64)
				c.objects.decref(ref[1], n)
				return nil
			}
		}
	}
	return &ProtocolError{Msg: "malformed DEL"}
}

// goAttr is getattr(v, name) on a Go value: a few dunders Python asks of any function,
// then an exported method (bound, so Python can call it), then an exported field.
func goAttr(v any, name string) (any, error) {
	switch name {
	case "__name__", "__qualname__":
		return fmt.Sprintf("%T", v), nil
	case "__doc__", "__module__":
		return nil, nil
	case "__call__":
		if reflect.ValueOf(v).Kind() == reflect.Func {
			return v, nil
		}
	}
	if !isExported(name) {
		return nil, &attrError{fmt.Sprintf("Go %T has no attribute %q", v, name)}
	}
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return nil, &attrError{fmt.Sprintf("Go nil has no attribute %q", name)}
	}
	if m := rv.MethodByName(name); m.IsValid() {
		return m.Interface(), nil
	}
	if f, ok := structField(rv, name); ok {
		return f.Interface(), nil
	}
	return nil, &attrError{fmt.Sprintf("Go %T has no attribute %q", v, name)}
}

// setGoAttr is setattr(v, name, value): only exported fields of a struct behind a
// pointer can change.
func setGoAttr(v any, name string, value any) error {
	rv := reflect.ValueOf(v)
	if !isExported(name) || rv.Kind() != reflect.Pointer {
		return &attrError{fmt.Sprintf("cannot set attribute %q of Go %T", name, v)}
	}
	f, ok := structField(rv, name)
	if !ok || !f.CanSet() {
		return &attrError{fmt.Sprintf("cannot set attribute %q of Go %T", name, v)}
	}
	x, err := convertArg(value, f.Type())
	if err != nil {
		return &typeError{fmt.Sprintf("%T.%s: %v", v, name, err)}
	}
	f.Set(x)
	return nil
}

func structField(rv reflect.Value, name string) (reflect.Value, bool) {
	for rv.Kind() == reflect.Pointer || rv.Kind() == reflect.Interface {
		if rv.IsNil() {
			return reflect.Value{}, false
		}
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return reflect.Value{}, false
	}
	sf, ok := rv.Type().FieldByName(name)
	if !ok || !sf.IsExported() {
		return reflect.Value{}, false
	}
	f, err := rv.FieldByIndexErr(sf.Index)
	if err != nil {
		return reflect.Value{}, false
	}
	return f, true
}

func isExported(name string) bool { return name != "" && name[0] >= 'A' && name[0] <= 'Z' }

// goDir is dir(v): __call__ for funcs, then exported methods and fields.
func goDir(v any) brine.Tuple {
	var names []string
	rv := reflect.ValueOf(v)
	if !rv.IsValid() {
		return brine.Tuple{}
	}
	if rv.Kind() == reflect.Func {
		names = append(names, "__call__")
	}
	for i := range rv.Type().NumMethod() {
		names = append(names, rv.Type().Method(i).Name)
	}
	t := rv.Type()
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct {
		for _, f := range reflect.VisibleFields(t) {
			if f.IsExported() && !f.Anonymous {
				names = append(names, f.Name)
			}
		}
	}
	slices.Sort(names)
	out := make(brine.Tuple, 0, len(names))
	for _, n := range slices.Compact(names) {
		out = append(out, n)
	}
	return out
}

// sameGoValue is identity for what Go cannot compare (funcs, maps, slices) and ==
// for the rest.
func sameGoValue(a, b any) bool {
	if _, ok := comparableKey(a); ok {
		if _, ok := comparableKey(b); ok {
			return a == b
		}
		return false
	}
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	switch va.Kind() {
	case reflect.Func, reflect.Map, reflect.Slice, reflect.Pointer, reflect.Chan, reflect.UnsafePointer:
		return vb.Kind() == va.Kind() && va.Type() == vb.Type() && va.Pointer() == vb.Pointer()
	}
	return false
}

func goRepr(v any) string {
	if s, ok := v.(fmt.Stringer); ok {
		return fmt.Sprintf("<Go %T %s>", v, s.String())
	}
	return fmt.Sprintf("<Go %T>", v)
}

var errorType = reflect.TypeFor[error]()

// callGo calls a Go func with Python's positional args (kwargs are refused: Go has
// no parameter names at run time). func(...any) (any, error) is called directly; any
// other func through reflect, each argument converted to its parameter's type.
func callGo(fn, args, kwargs any) (any, error) {
	if kw, _ := kwargs.(brine.Tuple); len(kw) > 0 {
		return nil, &typeError{"Go functions take no keyword arguments"}
	}
	pos, _ := args.(brine.Tuple)
	if f, ok := fn.(func(...any) (any, error)); ok {
		return f(pos...)
	}
	fv := reflect.ValueOf(fn)
	if fv.Kind() != reflect.Func {
		return nil, &typeError{fmt.Sprintf("Go %T is not callable", fn)}
	}
	ft := fv.Type()
	if n := ft.NumIn(); (!ft.IsVariadic() && len(pos) != n) || (ft.IsVariadic() && len(pos) < n-1) {
		return nil, &typeError{fmt.Sprintf("Go %v takes %d arguments, got %d", ft, n, len(pos))}
	}
	in := make([]reflect.Value, len(pos))
	for i, a := range pos {
		var want reflect.Type
		if ft.IsVariadic() && i >= ft.NumIn()-1 {
			want = ft.In(ft.NumIn() - 1).Elem()
		} else {
			want = ft.In(i)
		}
		v, err := convertArg(a, want)
		if err != nil {
			return nil, &typeError{fmt.Sprintf("argument %d: %v", i+1, err)}
		}
		in[i] = v
	}
	out := fv.Call(in)
	var results []any
	for _, o := range out {
		if o.Type() == errorType {
			if !o.IsNil() {
				return nil, o.Interface().(error)
			}
			continue
		}
		results = append(results, o.Interface())
	}
	switch len(results) {
	case 0:
		return nil, nil
	case 1:
		return results[0], nil
	}
	// several results come back as a tuple, as a Python function returns them
	return brine.Tuple(results), nil
}

// convertArg fits a Python value to a Go parameter: as is when assignable, and across
// numeric kinds only where no value is lost silently (no float to int).
func convertArg(a any, want reflect.Type) (reflect.Value, error) {
	if a == nil {
		switch want.Kind() {
		case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice, reflect.Func, reflect.Chan:
			return reflect.Zero(want), nil
		}
		return reflect.Value{}, fmt.Errorf("cannot use None as %v", want)
	}
	v := reflect.ValueOf(a)
	if v.Type().AssignableTo(want) {
		return v, nil
	}
	from, to := v.Kind(), want.Kind()
	switch {
	case isInt(from) && (isInt(to) || isFloat(to)), isFloat(from) && isFloat(to):
		out := v.Convert(want)
		if isInt(to) && out.Convert(v.Type()).Interface() != a {
			return reflect.Value{}, fmt.Errorf("%v overflows %v", a, want)
		}
		return out, nil
	case from == reflect.String && to == reflect.String, from == reflect.Bool && to == reflect.Bool:
		return v.Convert(want), nil
	}
	return reflect.Value{}, fmt.Errorf("cannot use %T as %v", a, want)
}

func isInt(k reflect.Kind) bool   { return k >= reflect.Int && k <= reflect.Uintptr }
func isFloat(k reflect.Kind) bool { return k == reflect.Float32 || k == reflect.Float64 }
