package trigger

import "time"

// NextChange is the earliest instant after env.Now at which the clock alone
// can change the answer of Eval for env (ok false: the answer no longer
// depends on the clock). Only WITHIN_LAST reads the clock: a predicate
// "within last d" of an actual time t holds while t <= now <= t+d, so it
// turns true at t (a time in the future) and false just after t+d. The
// instant returned is the first one at which some such predicate differs;
// the condition as a whole may still give the same answer then (another
// branch holds it), and a caller re-evaluates and asks again.
//
// A deadline sweeper stores it; the boundary itself is exact, and the
// instant after t+d is t+d plus one nanosecond, since at t+d the predicate
// still holds.
//
// Performed predicates read the clock too, through their state: their next
// changes come from the caller in [Env].BehaviorNext (one instant per entry
// of [Program.Behaviors], from behavior.State.NextChange at env.Now; zero
// for none), and the earliest one after env.Now counts like a WITHIN_LAST
// boundary. Instants at or before env.Now are ignored.
func (p *Program) NextChange(env Env) (time.Time, bool) {
	if p == nil || p.root == nil {
		return time.Time{}, false
	}
	if env.Now.IsZero() {
		env.Now = time.Now()
	}
	var next time.Time
	p.root.nextChange(&env, &next)
	return next, !next.IsZero()
}

func (n *cnode) nextChange(env *Env, next *time.Time) {
	if n.kind == KindPerformed {
		if n.behavior < len(env.BehaviorNext) {
			at := env.BehaviorNext[n.behavior]
			if !at.IsZero() && at.After(env.Now) && (next.IsZero() || at.Before(*next)) {
				*next = at
			}
		}
		return
	}
	if n.pred == nil {
		for _, c := range n.children {
			c.nextChange(env, next)
		}
		return
	}
	if n.pred.op != OpWithinLast {
		return
	}
	v, found := n.pred.lookup(env)
	if !found {
		return
	}
	t, ok := timeOf(v)
	if !ok {
		return
	}
	earliest := func(at time.Time) {
		if at.After(env.Now) && (next.IsZero() || at.Before(*next)) {
			*next = at
		}
	}
	earliest(t)                                          // turns true
	earliest(t.Add(n.pred.ops.dur).Add(time.Nanosecond)) // turns false
}
