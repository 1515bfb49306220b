package pyhost

import (
	"fmt"
	"slices"
	"strings"
)

// protocolConfigKeys are rpyc's protocol_config keys (rpyc.core.protocol.DEFAULT_CONFIG,
// 5.x and 6.x) with the JSON kinds each accepts: "bool", "number" (or null), "string",
// "strings" (a list of strings), "any".
var protocolConfigKeys = map[string]string{
	"allow_safe_attrs": "bool", "allow_exposed_attrs": "bool", "allow_public_attrs": "bool",
	"allow_all_attrs": "bool", "safe_attrs": "strings", "exposed_prefix": "string",
	"allow_getattr": "bool", "allow_setattr": "bool", "allow_delattr": "bool",
	"include_local_traceback": "bool", "include_local_version": "bool",
	"instantiate_custom_exceptions": "bool", "import_custom_exceptions": "bool",
	"instantiate_oldstyle_exceptions": "bool", "propagate_SystemExit_locally": "bool",
	"propagate_KeyboardInterrupt_locally": "bool", "log_exceptions": "bool", "allow_pickle": "bool",
	"connid": "string", "credentials": "any", "endpoints": "any", "logger": "any",
	"sync_request_timeout": "number", "before_closed": "any", "close_catchall": "bool",
	"bind_threads": "bool",
}

// ValidateProtocolConfig checks rpyc protocol_config keys as decoded from JSON: every
// key must be one of rpyc's, with a value of its kind.
func ValidateProtocolConfig(cfg map[string]any) error {
	for key, v := range cfg {
		kind, ok := protocolConfigKeys[key]
		if !ok {
			keys := make([]string, 0, len(protocolConfigKeys))
			for k := range protocolConfigKeys {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			return fmt.Errorf("unknown key %q; rpyc's keys are: %s", key, strings.Join(keys, ", "))
		}
		if !hasKind(v, kind) {
			return fmt.Errorf("%s: want a %s, got %v", key, kindName(kind), jsonType(v))
		}
	}
	return nil
}

func hasKind(v any, kind string) bool {
	switch kind {
	case "bool":
		_, ok := v.(bool)
		return ok
	case "number":
		_, ok := v.(float64)
		return ok || v == nil
	case "string":
		_, ok := v.(string)
		return ok
	case "strings":
		l, ok := v.([]any)
		if !ok {
			return false
		}
		for _, x := range l {
			if _, ok := x.(string); !ok {
				return false
			}
		}
		return true
	}
	return true
}

func kindName(kind string) string {
	switch kind {
	case "bool":
		return "boolean"
	case "number":
		return "number (seconds) or null"
	case "strings":
		return "list of strings"
	}
	return kind
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case float64:
		return "a number"
	case string:
		return fmt.Sprintf("the string %q", v)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
