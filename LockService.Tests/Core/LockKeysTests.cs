using LockService.Core.Leases;
using LockService.Core.Locks;

namespace LockService.Tests.Core;

public sealed class LockKeysTests
{
    [Theory]
    [InlineData("lock:", "", "", "lock:{*}")]
    [InlineData("lock:", "", "orders-", "lock:{orders-*}")]
    [InlineData("lock:", "billing", "orders-", "lock:billing:{orders-*}")]
    [InlineData("l*[ck]?\\", "", "a", "l\\*\\[ck\\]\\?\\\\{a*}")]
    [InlineData("lock:", "", "a*?[]\\", "lock:{a\\*\\?\\[\\]\\\\*}")]
    public void The_match_pattern_escapes_glob_characters_and_ends_at_the_hash_tag(string prefix, string tenant, string namePrefix, string pattern)
    {
        Assert.Equal(pattern, LeaseKeys.MatchPattern(prefix, tenant, namePrefix));
    }

    [Fact]
    public void Only_a_locks_own_hash_yields_a_name()
    {
        var keys = LockKeys.For("lock:", new LeaseName("billing", "orders-1"));

        Assert.Equal("orders-1", LeaseKeys.NameIn("lock:", "billing", keys.Lock));
        Assert.Null(LeaseKeys.NameIn("lock:", "billing", keys.Fence));
        Assert.Null(LeaseKeys.NameIn("lock:", "billing", keys.Leases));
        Assert.Null(LeaseKeys.NameIn("lock:", "billing", keys.LastLease));
        Assert.Null(LeaseKeys.NameIn("lock:", "", keys.Lock));
        Assert.Null(LeaseKeys.NameIn("lock:", "shipping", keys.Lock));
        Assert.Null(LeaseKeys.NameIn("lock:", "billing", "lock:billing:{}"));
        Assert.Null(LeaseKeys.NameIn("lock:", "billing", "lock:billing:{a b}"));
    }
}
