package chain

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestStateRootDependsOnContentsOnly applies random sets and deletes in
// random orders and checks that the root always equals that of a state
// built afresh from the same contents, that deleting what was added
// restores the earlier root, and that an unchanged value changes nothing.
func TestStateRootDependsOnContentsOnly(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		s := NewMemState()
		model := map[string]string{}
		for step := 0; step < 400; step++ {
			k := fmt.Sprintf("k%d", r.IntN(120))
			if r.IntN(4) == 0 {
				s.Delete([]byte(k))
				delete(model, k)
			} else {
				v := fmt.Sprintf("v%d", r.IntN(5))
				s.Set([]byte(k), []byte(v))
				model[k] = v
			}
			if step%37 == 0 {
				if got, want := s.Root(), fresh(model, r).Root(); got != want {
					t.Fatalf("seed %d step %d: root differs from a fresh state of the same contents", seed, step)
				}
			}
		}
		before := s.Root()
		s.Set([]byte("extra"), []byte("x"))
		if s.Root() == before {
			t.Fatal("adding a key left the root unchanged")
		}
		s.Delete([]byte("extra"))
		if s.Root() != before {
			t.Fatal("deleting the added key did not restore the root")
		}
		for k, v := range model {
			s.Set([]byte(k), []byte(v))
			if got, ok := s.Get([]byte(k)); !ok || string(got) != v {
				t.Fatalf("get %s", k)
			}
		}
		if s.Root() != before {
			t.Fatal("rewriting equal values changed the root")
		}
	}
	if NewMemState().Root() != [32]byte{} {
		t.Fatal("empty root is not zero")
	}
}

// fresh builds a state from contents, inserting in a random order.
func fresh(model map[string]string, r *rand.Rand) *MemState {
	keys := make([]string, 0, len(model))
	for k := range model {
		keys = append(keys, k)
	}
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	s := NewMemState()
	for _, k := range keys {
		s.Set([]byte(k), []byte(model[k]))
	}
	return s
}

// TestStateUpdateIsLogarithmic checks the cost of one update in a state of
// 100,000 keys: the nodes rehashed are those on one path, about log2(n),
// not the whole state.
func TestStateUpdateIsLogarithmic(t *testing.T) {
	s := NewMemState()
	for i := 0; i < 100_000; i++ {
		s.Set([]byte(fmt.Sprint("member/", i)), []byte("agency"))
	}
	s.Root()
	s.hashed = 0
	s.Set([]byte("member/77"), []byte("auditor"))
	s.Root()
	if s.hashed > 40 {
		t.Fatalf("one update rehashed %d nodes in a state of 100,000 keys", s.hashed)
	}
	t.Logf("one update rehashed %d nodes", s.hashed)
}

func BenchmarkStateSet(b *testing.B) {
	s := NewMemState()
	for i := 0; i < 100_000; i++ {
		s.Set([]byte(fmt.Sprint("k", i)), []byte("v"))
	}
	s.Root()
	i := 0
	for b.Loop() {
		s.Set([]byte(fmt.Sprint("k", i%100_000)), []byte(fmt.Sprint(i)))
		s.Root()
		i++
	}
}

// TestCloneIsIndependent checks that a clone and its original share
// nothing observable: writes to either leave the other's contents and
// root as they were, and each root still equals that of a fresh state of
// the same contents.
func TestCloneIsIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 0))
	base := NewMemState()
	model := map[string]string{}
	for i := 0; i < 500; i++ {
		k, v := fmt.Sprint("k", i), fmt.Sprint("v", i)
		base.Set([]byte(k), []byte(v))
		model[k] = v
	}
	before := base.Root()
	clone := base.Clone().(*MemState)
	cloneModel := map[string]string{}
	for k, v := range model {
		cloneModel[k] = v
	}
	for i := 0; i < 200; i++ {
		k := fmt.Sprint("k", r.IntN(700))
		if i%3 == 0 {
			clone.Delete([]byte(k))
			delete(cloneModel, k)
		} else {
			clone.Set([]byte(k), []byte("changed"))
			cloneModel[k] = "changed"
		}
	}
	if base.Root() != before || base.Len() != len(model) {
		t.Fatal("writes to a clone changed the original")
	}
	for k, v := range model {
		if got, ok := base.Get([]byte(k)); !ok || string(got) != v {
			t.Fatalf("original lost %s", k)
		}
	}
	if clone.Root() != fresh(cloneModel, r).Root() || clone.Len() != len(cloneModel) {
		t.Fatal("the clone's root is not that of its contents")
	}
	base.Set([]byte("only-in-base"), []byte("x"))
	if _, ok := clone.Get([]byte("only-in-base")); ok {
		t.Fatal("a write to the original showed in the clone")
	}
}

// TestDiffMatchesBruteForce derives states from one another by random
// sets (new keys, changed and unchanged values) and deletes, and checks
// Diff against a comparison of every key of both, in both directions and
// between unrelated states of the same contents.
func TestDiffMatchesBruteForce(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		base := NewMemState()
		for i := 0; i < r.IntN(300); i++ {
			base.Set([]byte(fmt.Sprint("k", r.IntN(400))), []byte(fmt.Sprint("v", r.IntN(3))))
		}
		cur := base.Clone().(*MemState)
		for step := 0; step < 6; step++ {
			next := cur.Clone().(*MemState)
			for i := 0; i < r.IntN(60); i++ {
				k := []byte(fmt.Sprint("k", r.IntN(400)))
				switch r.IntN(3) {
				case 0:
					next.Delete(k)
				default:
					next.Set(k, []byte(fmt.Sprint("v", r.IntN(3))))
				}
			}
			checkDiff(t, seed, next, cur)
			checkDiff(t, seed, cur, next)
			checkDiff(t, seed, next, base)
			// Same contents, no shared nodes.
			checkDiff(t, seed, rebuilt(t, next), cur)
			cur = next
		}
		checkDiff(t, seed, cur, NewMemState())
		checkDiff(t, seed, NewMemState(), cur)
		checkDiff(t, seed, cur, cur)
	}
}

func checkDiff(t *testing.T, seed uint64, s, old *MemState) {
	t.Helper()
	set, deleted := s.Diff(old)
	wantSet := map[string]string{}
	for _, k := range s.Keys() {
		v, _ := s.Get([]byte(k))
		if ov, ok := old.Get([]byte(k)); !ok || string(ov) != string(v) {
			wantSet[k] = string(v)
		}
	}
	var wantDel []string
	for _, k := range old.Keys() {
		if _, ok := s.Get([]byte(k)); !ok {
			wantDel = append(wantDel, k)
		}
	}
	if len(set) != len(wantSet) {
		t.Fatalf("seed %d: diff sets %d keys, want %d", seed, len(set), len(wantSet))
	}
	for k, v := range wantSet {
		if got, ok := set[k]; !ok || string(got) != v {
			t.Fatalf("seed %d: diff sets %q to %q (present %v), want %q", seed, k, got, ok, v)
		}
	}
	slices.Sort(deleted)
	if !slices.Equal(deleted, wantDel) {
		t.Fatalf("seed %d: diff deletes %q, want %q", seed, deleted, wantDel)
	}
	// Applying the diff to old gives s.
	applied := old.Clone().(*MemState)
	for k, v := range set {
		applied.Set([]byte(k), v)
	}
	for _, k := range deleted {
		applied.Delete([]byte(k))
	}
	if applied.Root() != s.Root() {
		t.Fatalf("seed %d: old with the diff applied has another root", seed)
	}
}

// rebuilt is s built afresh by a MemStateBuilder.
func rebuilt(t testing.TB, s *MemState) *MemState {
	t.Helper()
	var b MemStateBuilder
	for _, k := range s.Keys() {
		v, _ := s.Get([]byte(k))
		b.Add([]byte(k), v)
	}
	out, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDiffCostsOnlyTheChangedPaths checks that diffing a state of 100,000
// keys against its parent after 10 updates visits a few paths, not the
// whole trie.
func TestDiffCostsOnlyTheChangedPaths(t *testing.T) {
	s := NewMemState()
	for i := 0; i < 100_000; i++ {
		s.Set([]byte(fmt.Sprint("member/", i)), []byte("agency"))
	}
	next := s.Clone().(*MemState)
	for i := 0; i < 10; i++ {
		next.Set([]byte(fmt.Sprint("member/", i*97)), []byte("auditor"))
	}
	next.Delete([]byte("member/5"))
	d := differ{set: map[string][]byte{}}
	d.nodes(next.root, s.root, 0)
	if len(d.set) != 10 || len(d.deleted) != 1 {
		t.Fatalf("diff: %d set, %d deleted", len(d.set), len(d.deleted))
	}
	// 11 paths of about log2(100,000) ≈ 17 nodes, two sides each.
	if d.visited > 11*2*24 {
		t.Fatalf("a diff of 11 changes compared %d node pairs", d.visited)
	}
	t.Logf("a diff of 11 changes in 100,000 keys compared %d node pairs", d.visited)
}

// TestBuilderMatchesSet checks that a state built from its pairs has the
// contents and root of one built by Set, in any order, and that a key
// given twice is refused.
func TestBuilderMatchesSet(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, n := range []int{0, 1, 2, 3, 17, 1000} {
		model := map[string]string{}
		for i := 0; i < n; i++ {
			model[fmt.Sprint("key-", i)] = fmt.Sprint("value-", r.IntN(10))
		}
		want := fresh(model, r)
		got := rebuilt(t, want)
		if got.Root() != want.Root() || got.Len() != want.Len() {
			t.Fatalf("%d keys: built state differs from the one Set built", n)
		}
		for k, v := range model {
			if x, ok := got.Get([]byte(k)); !ok || string(x) != v {
				t.Fatalf("%d keys: get %s", n, k)
			}
		}
		// It behaves as any state afterwards.
		got.Set([]byte("key-0"), []byte("new"))
		want.Set([]byte("key-0"), []byte("new"))
		got.Delete([]byte("key-1"))
		want.Delete([]byte("key-1"))
		if got.Root() != want.Root() {
			t.Fatalf("%d keys: built state diverges after updates", n)
		}
	}
	var b MemStateBuilder
	b.Add([]byte("a"), []byte("1"))
	b.Add([]byte("b"), []byte("2"))
	b.Add([]byte("a"), []byte("3"))
	if _, err := b.Build(); err == nil {
		t.Fatal("a key added twice was accepted")
	}
}

func loadPairs(n int) ([][]byte, [][]byte) {
	keys, values := make([][]byte, n), make([][]byte, n)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("dataset/%032d", i))
		values[i] = []byte(fmt.Sprintf("{size: %d, name: dataset-%d, policy: open, height: %d}", i, i, i/100))
	}
	return keys, values
}

// BenchmarkLoadState compares building a state of n keys (with its root)
// from its pairs by MemStateBuilder and by Set.
func BenchmarkLoadState(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		keys, values := loadPairs(n)
		b.Run(fmt.Sprintf("builder/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var sb MemStateBuilder
				for i := range keys {
					sb.Add(keys[i], values[i])
				}
				s, err := sb.Build()
				if err != nil {
					b.Fatal(err)
				}
				s.Root()
			}
		})
		b.Run(fmt.Sprintf("set/%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s := NewMemState()
				for i := range keys {
					s.Set(keys[i], values[i])
				}
				s.Root()
			}
		})
	}
}

// BenchmarkDiff diffs a state of 100,000 keys against its parent after
// 6,000 updates (a block of 2,000 transactions).
func BenchmarkDiff(b *testing.B) {
	keys, values := loadPairs(100_000)
	s := NewMemState()
	for i := range keys {
		s.Set(keys[i], values[i])
	}
	next := s.Clone().(*MemState)
	for i := 0; i < 6000; i++ {
		next.Set([]byte(fmt.Sprint("new/", i)), values[i])
	}
	b.ReportAllocs()
	for b.Loop() {
		next.Diff(s)
	}
}
