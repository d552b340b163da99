// Package sigma runs Sigma rules natively. Sigma rule files (YAML, one rule or a multi-document
// collection) flow in; what flows out is, for each single-event rule, a Compiled rule: the crumbs
// event kinds it reads and an engine.Condition over an event's activation, with the rule's
// metadata for the alerts it raises. Correlation rules are parsed and validated into Correlation
// values for the engine's windowed kinds. A rule that uses anything crumbs cannot evaluate is
// refused as a whole, with the construct and the reason; it is never loaded in part.
//
// The Sigma field names, the logsources and the modifiers supported are documented in
// docs/sigma.md, generated from this package's tables by its tests.
package sigma
