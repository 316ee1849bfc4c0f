package store_test

import (
	"testing"

	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

// checkAccounting fails t if what m counted it keeps, as it wrote, is not
// what a walk over everything it keeps counts, or if it keeps records of no
// conversation.
func checkAccounting(t *testing.T, m *store.Memory) {
	t.Helper()
	diffs, total, strays := store.MemoryRecount(m)
	for id, d := range diffs {
		t.Errorf("conversation %s: counted %d bytes as written, %d walking it", id, d[1], d[0])
	}
	if got := m.Bytes(); got != total {
		t.Errorf("Bytes() = %d, a walk counts %d", got, total)
	}
	if strays != 0 {
		t.Errorf("%d records of no conversation kept", strays)
	}
}

// TestMemory runs the contract suite, and checks after each of its tests
// that the store's count of its bytes is what a walk over them counts.
func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store {
		m := store.NewMemory()
		t.Cleanup(func() { checkAccounting(t, m) })
		return m
	})
}

// memoryInstances are views of one Memory's data as several instances.
type memoryInstances struct{ m *store.Memory }

func (in memoryInstances) Open(_ *testing.T, id string) storetest.Store {
	return store.MemoryInstance(in.m, id)
}

func (in memoryInstances) ExpireLeases(*testing.T) { store.ExpireLeases(in.m) }

func TestMemoryInstances(t *testing.T) {
	storetest.RunInstances(t, func(t *testing.T) storetest.Instances {
		m := store.NewMemory()
		t.Cleanup(func() { checkAccounting(t, m) })
		return memoryInstances{m}
	})
}
