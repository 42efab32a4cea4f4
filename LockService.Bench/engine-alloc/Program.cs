// Bytes the engine allocates per acquire+release cycle of a plain lock, in one process with no HTTP in the way: what a
// change to the engine adds to every request's garbage. Built by engine-alloc.sh against a checkout's LockService.Core;
// LOCK_ENGINE selects the API of checkouts from before the lease engine (LockEngine), else LeaseEngine and LockStore.
using StackExchange.Redis;
#if LOCK_ENGINE
using LockService.Core.Locks;
#else
using LockService.Core.Leases;
using LockService.Core.Locks;
#endif

var redis = args.Length > 0 ? args[0] : "127.0.0.1:6379";
var cycles = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 20_000;
using var multiplexer = await ConnectionMultiplexer.ConnectAsync(redis);
#if LOCK_ENGINE
using var engine = new LockEngine(multiplexer, new LockOptions(), new RedisOptions { ConnectionString = redis });
async Task CycleAsync(int i)
{
    var name = LockName.Of("engine-alloc-" + (i % 1000));
    var held = await engine.AcquireAsync(name, new AcquireRequest(30_000));
    await engine.ReleaseAsync(name, held.Lease!.Token);
}
#else
using var engine = new LeaseEngine(multiplexer, new LeaseOptions(), new RedisOptions { ConnectionString = redis });
var locks = new LockStore(engine);
async Task CycleAsync(int i)
{
    var name = LeaseName.Of("engine-alloc-" + (i % 1000));
    var held = await engine.AcquireAsync(locks, name, new AcquireRequest(30_000));
    await locks.ReleaseAsync(name, held.Lease!.Token);
}
#endif

// A warm-up, so that tiered compilation and the connection's buffers are settled, then five measured rounds: one after
// another on one task, so the count is the cycle's own (the name string is the harness's, the same for every build).
for (var i = 0; i < 5_000; i++)
{
    await CycleAsync(i);
}

for (var round = 0; round < 5; round++)
{
    var before = GC.GetTotalAllocatedBytes(precise: true);
    for (var i = 0; i < cycles; i++)
    {
        await CycleAsync(i);
    }

    Console.WriteLine(((GC.GetTotalAllocatedBytes(precise: true) - before) / (double)cycles).ToString("F0", System.Globalization.CultureInfo.InvariantCulture));
}
