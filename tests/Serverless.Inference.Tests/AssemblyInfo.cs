// Tests share one expensive fixture and read process-wide secret-key counters: run them one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
