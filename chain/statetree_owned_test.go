package chain

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestOwnNodesStayPrivate mixes sets, deletes, clones and roots over a
// family of states, each with its model: a state changes in place only
// the nodes it made since its last clone, so no write shows in another
// state, and a root taken between writes never goes stale. After every
// step each state must hold exactly its model's contents, and its root
// must be that of a state built afresh from them.
func TestOwnNodesStayPrivate(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		states := []*MemState{NewMemState()}
		models := []map[string]string{{}}
		for step := 0; step < 400; step++ {
			i := r.IntN(len(states))
			s, m := states[i], models[i]
			switch op := r.IntN(10); {
			case op == 0 && len(states) < 6:
				states = append(states, s.Clone().(*MemState))
				models = append(models, maps.Clone(m))
			case op == 1:
				s.Root() // hashes computed now must not survive later writes
			case op <= 3:
				k := fmt.Sprint("k", r.IntN(200))
				s.Delete([]byte(k))
				delete(m, k)
			default:
				k, v := fmt.Sprint("k", r.IntN(200)), fmt.Sprint("v", step)
				s.Set([]byte(k), []byte(v))
				m[k] = v
			}
			for j, st := range states {
				if j == i || step%20 == 0 {
					checkAgainstModel(t, fmt.Sprintf("seed %d step %d state %d", seed, step, j), st, models[j])
				}
			}
		}
	}
}

func checkAgainstModel(t *testing.T, where string, s *MemState, model map[string]string) {
	t.Helper()
	if s.Len() != len(model) {
		t.Fatalf("%s: %d keys, model %d", where, s.Len(), len(model))
	}
	var b MemStateBuilder
	for k, v := range model {
		if got, ok := s.Get([]byte(k)); !ok || string(got) != v {
			t.Fatalf("%s: %s is %q, model %q", where, k, got, v)
		}
		b.Add([]byte(k), []byte(v))
	}
	fresh, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if s.Root() != fresh.Root() {
		t.Fatalf("%s: root differs from a fresh state's of the same contents", where)
	}
}
