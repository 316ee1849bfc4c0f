package store_test

import (
	"testing"

	"github.com/switchboard-dev/switchboard/store"
	"github.com/switchboard-dev/switchboard/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Store { return store.NewMemory() })
}

// memoryInstances are views of one Memory's data as several instances.
type memoryInstances struct{ m *store.Memory }

func (in memoryInstances) Open(_ *testing.T, id string) storetest.Store {
	return store.MemoryInstance(in.m, id)
}

func (in memoryInstances) ExpireLeases(*testing.T) { store.ExpireLeases(in.m) }

func TestMemoryInstances(t *testing.T) {
	storetest.RunInstances(t, func(t *testing.T) storetest.Instances { return memoryInstances{store.NewMemory()} })
}
