package engine

import (
	"fmt"
	"sync"

	"cel.dev/cel-go/cel"
)

// envs holds one CEL environment per source kind: the event's top-level fields are the
// variables a condition can use.
var (
	envsOnce sync.Once
	envs     map[string]*cel.Env
	envsErr  error
)

// topLevel lists the variables of every event, and those of each kind's body.
var topLevel = map[string][]string{
	"process":  {"action", "process"},
	"network":  {"action", "network"},
	"file":     {"action", "file"},
	"identity": {"action", "identity"},
	"system":   {"system"},
}

func celEnv(source string) (*cel.Env, error) {
	envsOnce.Do(func() {
		envs = map[string]*cel.Env{}
		for src, vars := range topLevel {
			opts := []cel.EnvOption{
				cel.Variable("event_id", cel.StringType),
				cel.Variable("time", cel.IntType),
				cel.Variable("kind", cel.StringType),
				cel.Variable("host", cel.MapType(cel.StringType, cel.StringType)),
				cel.Variable("enrichment", cel.MapType(cel.StringType, cel.DynType)),
			}
			for _, v := range vars {
				if v == "action" {
					opts = append(opts, cel.Variable(v, cel.StringType))
				} else {
					opts = append(opts, cel.Variable(v, cel.MapType(cel.StringType, cel.DynType)))
				}
			}
			env, err := cel.NewEnv(opts...)
			if err != nil {
				envsErr = err
				return
			}
			envs[src] = env
		}
	})
	if envsErr != nil {
		return nil, envsErr
	}
	return envs[source], nil
}

// compile parses and type-checks a condition, which must be a boolean expression.
func compile(source, expr string) (cel.Program, error) {
	env, err := celEnv(source)
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("must be a boolean expression, is %s", ast.OutputType())
	}
	return env.Program(ast, cel.EvalOptions(cel.OptOptimize))
}
