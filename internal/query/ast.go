package query

import (
	"strconv"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// obj is a JSON object; encoding/json writes its keys sorted, as Prometheus' codec does
// for the maps it builds for /parse_query.
type obj = map[string]any

// astJSON describes a PromQL syntax tree as /api/v1/parse_query answers it: the tree view
// of Prometheus' UI reads it. Durations are milliseconds; absent children are null.
func astJSON(n parser.Expr) any {
	switch n := n.(type) {
	case nil:
		return nil
	case *parser.AggregateExpr:
		return obj{"type": "aggregation", "op": n.Op.String(), "expr": astJSON(n.Expr),
			"param": astJSON(n.Param), "grouping": nonNil(n.Grouping), "without": n.Without}
	case *parser.BinaryExpr:
		var matching any
		if vm := n.VectorMatching; vm != nil {
			matching = obj{"card": vm.Card.String(), "labels": nonNil(vm.MatchingLabels), "on": vm.On,
				"include":    nonNil(vm.Include),
				"fillValues": map[string]*float64{"lhs": vm.FillValues.LHS, "rhs": vm.FillValues.RHS}}
		}
		return obj{"type": "binaryExpr", "op": n.Op.String(), "lhs": astJSON(n.LHS), "rhs": astJSON(n.RHS),
			"matching": matching, "bool": n.ReturnBool}
	case *parser.Call:
		args := make([]any, 0, len(n.Args))
		for _, arg := range n.Args {
			args = append(args, astJSON(arg))
		}
		return obj{"type": "call", "args": args, "func": obj{"name": n.Func.Name, "argTypes": n.Func.ArgTypes,
			"variadic": n.Func.Variadic, "returnType": n.Func.ReturnType}}
	case *parser.MatrixSelector:
		vs := n.VectorSelector.(*parser.VectorSelector)
		o := selectorJSON("matrixSelector", vs)
		o["range"] = millis(n.Range)
		o["rangeExpr"] = durationJSON(n.RangeExpr)
		return o
	case *parser.VectorSelector:
		return selectorJSON("vectorSelector", n)
	case *parser.SubqueryExpr:
		return obj{"type": "subquery", "expr": astJSON(n.Expr),
			"range": millis(n.Range), "rangeExpr": durationJSON(n.RangeExpr),
			"offset": millis(n.OriginalOffset), "offsetExpr": durationJSON(n.OriginalOffsetExpr),
			"step": millis(n.Step), "stepExpr": durationJSON(n.StepExpr),
			"timestamp": n.Timestamp, "startOrEnd": startOrEnd(n.StartOrEnd)}
	case *parser.DurationExpr:
		return durationJSON(n)
	case *parser.NumberLiteral:
		return map[string]string{"type": "numberLiteral", "val": strconv.FormatFloat(n.Val, 'f', -1, 64)}
	case *parser.ParenExpr:
		return obj{"type": "parenExpr", "expr": astJSON(n.Expr)}
	case *parser.StringLiteral:
		return obj{"type": "stringLiteral", "val": n.Val}
	case *parser.UnaryExpr:
		return obj{"type": "unaryExpr", "op": n.Op.String(), "expr": astJSON(n.Expr)}
	}
	// A node type added to PromQL after this code was written.
	return obj{"type": "unknown", "text": n.String()}
}

func selectorJSON(typ string, vs *parser.VectorSelector) obj {
	matchers := make([]obj, 0, len(vs.LabelMatchers))
	for _, m := range vs.LabelMatchers {
		matchers = append(matchers, matcherJSON(m))
	}
	return obj{"type": typ, "name": vs.Name, "matchers": matchers,
		"offset": millis(vs.OriginalOffset), "offsetExpr": durationJSON(vs.OriginalOffsetExpr),
		"timestamp": vs.Timestamp, "startOrEnd": startOrEnd(vs.StartOrEnd),
		"anchored": vs.Anchored, "smoothed": vs.Smoothed}
}

func matcherJSON(m *labels.Matcher) obj {
	return obj{"name": m.Name, "value": m.Value, "type": m.Type.String()}
}

// durationJSON describes the expression of a duration (`x[1h+5m]`); numbers in it say
// whether they were written as durations.
func durationJSON(e parser.Expr) any {
	switch n := e.(type) {
	case nil:
		return nil
	case *parser.DurationExpr:
		if n == nil {
			return nil
		}
		return obj{"type": "durationExpr", "op": n.Op.String(), "lhs": durationJSON(n.LHS),
			"rhs": durationJSON(n.RHS), "wrapped": n.Wrapped}
	case *parser.NumberLiteral:
		if n == nil {
			return nil
		}
		return obj{"type": "numberLiteral", "val": strconv.FormatFloat(n.Val, 'f', -1, 64), "duration": n.Duration}
	}
	return astJSON(e)
}

func millis(d time.Duration) int64 { return d.Milliseconds() }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func startOrEnd(t parser.ItemType) any {
	if t == 0 {
		return nil
	}
	return t.String()
}
