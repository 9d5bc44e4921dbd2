// The async loaders' allocations are measured process-wide (GC.GetTotalAllocatedBytes), so the
// fuzz classes must not run beside each other.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
