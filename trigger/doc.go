// Package trigger is segmentd's condition language: the rules that decide
// whether a user enters a segment when an event arrives.
//
// A condition is a tree. Groups (AND, OR, NOT) combine conditions;
// predicates test one property of the triggering event (scope EVENT) or one
// trait of the user (scope USER) with an operator and a value. The tree
// arrives as a [ConditionInput], the GraphQL input type. [Parse] validates it
// into a [Node], [Node.String] renders it as one readable line, [Compile]
// prepares a [Program], and [Program.Eval] decides and explains. The package
// uses only the standard library, so the store, the API and the evaluator
// all share it.
//
// # Validation
//
// [Parse] returns an [*Error] whose Path names the first bad node or field
// in depth-first order, such as "condition.or[1].value":
//
//   - A node is either a group (exactly one of and, or, not) or a predicate
//     (scope, property, operator, value), never both and never neither. A
//     group needs at least one child; children must not be null.
//   - A predicate needs a scope, a property and an operator. The property is
//     not blank, at most 256 bytes of valid UTF-8, without control
//     characters.
//   - The value depends on the operator. EQ, NEQ, CONTAINS, NOT_CONTAINS: a
//     string, number or boolean. GT, GTE, LT, LTE: a number, a numeric
//     string or a date (see [DateForms]); any other string is refused,
//     naming the forms. STARTS_WITH, ENDS_WITH: a string. MATCHES: an RE2
//     regular expression. IN, NOT_IN: a non-empty list of at most 1000
//     strings, numbers or booleans. BETWEEN: [low, high], two numbers or
//     two dates (or numeric strings), with low <= high. WITHIN_LAST: a
//     duration as read by [ParseDuration]. EXISTS, NOT_EXISTS: the value is
//     ignored and kept as given (dropped if it cannot be written as JSON).
//     Strings in a value are at most 1000 bytes.
//   - A tree nests at most [MaxDepth] levels and has at most [MaxNodes]
//     nodes, counting the nodes of performed predicates' where conditions.
//
// A node may instead be a behaviour predicate, performed (a [PerformedInput]
// alone on its node; [KindPerformed]), with its errors under
// "<node>.performed":
//
//   - event: required, not blank, at most 256 bytes, as a property.
//   - where: optional; a condition each counted event must meet, using
//     scope EVENT only (it reads the counted event's properties) and no
//     performed of its own.
//   - within: null for all time, or a duration read by [ParseDuration]
//     from [MinWithin] (1s) to [MaxWithin] (10 years, 3653 days).
//   - count or aggregate, not both; neither means count GTE 1, which
//     [Parse] stores. Their operator is EQ, NEQ, GT, GTE, LT, LTE or
//     BETWEEN. A count's value is a whole number from 0 to
//     [MaxPerformedCount] (or [low, high] of them); an aggregate's function
//     is SUM, AVG, MIN or MAX, its property is checked like a predicate's,
//     and its value is any finite number (or [low, high]). Strings are
//     refused, numeric ones too: the figure is a number.
//   - At most [MaxPerformed] performed predicates in one condition, and at
//     most [MaxPerformedNesting] groups (AND, OR, NOT) above each:
//     NOT(AND(OR(performed))) is the deepest allowed. Nesting is counted in
//     groups because every ancestor of a predicate is one; the root is not
//     nested at all.
//
// Values are stored as canonical JSON (see [Node]); numbers keep their exact
// literal text, so 1.50 stays 1.50.
//
// # Evaluation
//
// Property lookup: a predicate reads [Env].Event (scope EVENT) or [Env].User
// (scope USER). The exact key is tried first, since names may contain spaces
// and dots; if it is absent, the name is split on "." and nested
// map[string]any values are walked ("address.city"). A nil map holds
// nothing. A property that is absent or JSON null is missing.
//
// Missing properties: every operator is false on a missing property except
// NOT_EXISTS. So NEQ, NOT_IN and NOT_CONTAINS are false too: "is not X"
// says something about a value that is there. Wrap a predicate in NOT to
// include users without the property: NOT (EQ) on a missing property is
// true.
//
// Typed comparison, used by EQ, NEQ, GT, GTE, LT, LTE, IN, NOT_IN, BETWEEN
// and list membership in CONTAINS:
//
//   - An expected number compares numerically with an actual number
//     (float64, json.Number, any Go integer or float) or with a numeric
//     string such as "42" or " 3.5 " (decimal only: "NaN", "Inf" and hex
//     are text). Numbers compare as float64.
//   - An expected string that is a date/time compares as an instant with
//     an actual string that is one too, or with a time.Time, whatever the
//     forms of the two: RFC 3339 with or without fractional seconds ("T" or
//     a space before the time), "2006-01-02T15:04:05" meaning UTC,
//     "2006-01-02" meaning midnight UTC, and the written forms "January 2,
//     2006", "Jan 2, 2006", "January 2 2006", "2 January 2006" and "2 Jan
//     2006" (English month names, any case, full or abbreviated; midnight
//     UTC). So "March 1, 2024" is before "January 1, 2025" and "2025-03-01"
//     after it. Against anything else it orders with nothing (GT, LT and
//     BETWEEN are false), and is equal only to the identical string.
//   - An expected numeric string compares numerically with an actual
//     number; "true" or "false" compares with an actual boolean.
//   - Otherwise two strings compare exactly, case-sensitive. An expected
//     numeric string orders an actual string byte by byte; so does text
//     that is neither a number nor a date in an ordering predicate stored
//     before such text was refused ([Compile] still accepts such trees so
//     that segments already saved keep working; [Parse] refuses them).
//   - An expected boolean compares with an actual boolean or the string
//     "true" or "false".
//   - Any other pairing cannot be compared and the predicate is false, for
//     NEQ and NOT_IN as much as for EQ and IN.
//
// Operators, for a property that is present:
//
//   - EXISTS is true; NOT_EXISTS is false.
//   - EQ and NEQ: typed equality; NEQ needs the two to be comparable.
//   - GT, GTE, LT, LTE: typed order.
//   - CONTAINS: an actual string contains the expected value as text (50
//     as "50"), or an actual list ([]any or []string) has an element
//     typed-equal to it. NOT_CONTAINS: the actual is a string or a list and
//     CONTAINS is false.
//   - STARTS_WITH, ENDS_WITH, MATCHES: the actual must be a string; MATCHES
//     finds the RE2 expression anywhere in it (anchor with ^ and $).
//   - IN: typed-equal to some element. NOT_IN: comparable with some
//     element and equal to none.
//   - BETWEEN: low <= actual <= high, inclusive, typed as above.
//   - WITHIN_LAST: the actual is a date/time string in any of the forms
//     above (or a time.Time) t with
//     Now-d <= t <= Now, where Now is [Env].Now (the event's timestamp; the
//     wall clock if zero). Future times do not count.
//
// # Behaviour predicates
//
// The package does not keep behaviour state: [Program.Behaviors] lists the
// performed predicates (depth-first, one per occurrence), each with its
// event name, where condition, [behavior.Spec] and, for aggregates, the
// property ([Behavior.Counts] and [Behavior.Value] apply them to an
// event), and a [Behavior.Key] to store its state under. The caller keeps a
// behavior.State per (user, key), and passes its answers in [Env].Behaviors
// and, for [Program.NextChange], its next changes in [Env].BehaviorNext,
// both indexed like Behaviors. A performed predicate without a result is
// false. Aggregated values are numbers or numeric strings; anything else is
// not counted.
//
// Text: performed "<event>"[ where <condition>] <measure>[ within <d>],
// where the measure is a count ("at least 3 times", "more than 3 times",
// "at most 3 times", "fewer than 3 times", "exactly 3 times", "not exactly
// 3 times", "between 2 and 5 times", and "0 times" for EQ 0; "1 time" in
// the singular) or an aggregate ("SUM of amount > 100"); all time has no
// suffix. A where group is parenthesized:
//
//	performed "Purchase Completed" where event.total > 10 at least 3 times within 7d
//	performed "Login" 0 times within 14d
//	performed "Purchase Completed" SUM of amount > 100 within 30d
//
// # Reasons
//
// [Result].Reason explains the outcome in one line:
//
//   - "matched: <the tree's text>", or "no conditions" for an empty tree.
//   - "condition failed: <predicate> (was <actual>)" for a predicate, for
//     example `condition failed: event."Reward Amount" > 50 (was 20)`. The
//     actual value is JSON cut to about 100 bytes, or "missing".
//   - AND reports its first failing child; OR reports "none of: " and every
//     child's failure, separated by "; " (a nested OR in parentheses); NOT
//     reports "NOT (<child>) held".
//   - A performed predicate shows its figure ([FigureText]): `performed
//     "Login" at least 1 time within 14d (was 0)`, "(was at least 3)" when
//     the state knows a lower bound, "(was no values)" for an aggregate over
//     none, "(not evaluated)" without a result; a NOT around one adds it
//     too: `NOT (performed "Refund" at least 1 time within 14d) held (was 1)`.
package trigger
