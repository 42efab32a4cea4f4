using System.Net;
using LockService.Tests.Api;
using LockService.Tests.Infrastructure;

namespace LockService.Tests.Semaphores;

/// <summary>The operator endpoints of semaphores with API keys: listing and force-release of one slot (its audit event: OperatorTests).</summary>
public sealed class SemaphoreOperatorTests(OperatorFixture fixture) : IClassFixture<OperatorFixture>
{
    private LockClient Admin => fixture.As(OperatorFixture.BillingAdmin);

    private LockClient Client => fixture.As(OperatorFixture.BillingClient);

    [Fact]
    public async Task Listing_pages_through_the_tenants_semaphores_with_their_permits_none_twice_in_a_page_and_never_a_token()
    {
        var prefix = Keys.Unique("semlist") + "-";
        var names = Enumerable.Range(0, 7).Select(i => $"{prefix}{i}").ToArray();
        var permits = new List<Permit>();
        foreach (var name in names)
        {
            permits.Add(await Client.AcquirePermitOkAsync(name, "limit=3&ttlMs=60000&owner=lister"));
            permits.Add(await Client.AcquirePermitOkAsync(name, "limit=3&ttlMs=60000&owner=lister"));
        }

        await fixture.As(OperatorFixture.ShippingAdmin).AcquirePermitOkAsync(prefix + "shipping", "limit=1");
        var emptied = await Client.AcquirePermitOkAsync(prefix + "emptied", "limit=1");
        await Client.ReleasePermitAsync(emptied.Key, emptied.Token);
        await Client.AcquireOkAsync(prefix + "a-lock");

        var pages = await Operators.ListAllAsync(Admin, prefix, limit: 3, resource: "semaphores");

        var listed = pages.SelectMany(p => p).ToList();
        Assert.All(pages, page => Assert.InRange(page.Count, 0, 3));
        Assert.All(pages, page => Assert.Equal(page.Count, page.Select(s => s.GetProperty("key").GetString()).Distinct().Count()));
        Assert.Equal(names.Order(), listed.Select(s => s.GetProperty("key").GetString()!).Distinct().Order());
        foreach (var semaphore in listed)
        {
            Assert.Equal(2, semaphore.GetProperty("held").GetInt32());
            var held = semaphore.GetProperty("permits").EnumerateArray().ToList();
            Assert.Equal([0, 1], held.Select(p => p.GetProperty("slot").GetInt32()));
            var mine = permits.Where(p => p.Key == semaphore.GetProperty("key").GetString()).ToList();
            Assert.Equal(mine.Select(p => p.FencingToken), held.Select(p => p.GetProperty("fencingToken").GetInt64()));
            Assert.All(held, p => Assert.Equal("lister", p.GetProperty("owner").GetString()));
        }

        var text = string.Join(",", listed.Select(s => s.GetRawText()));
        Assert.All(permits, p => Assert.DoesNotContain(p.Token, text, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_semaphore_with_permits_held_throughout_a_listing_appears_while_others_come_and_go() =>
        await Operators.AssertListingFindsHeldLocksDuringChurnAsync(Client, Admin, Keys.Unique("semchurn") + "-", held: 30, limit: 3, LeaseResource.Semaphores);

    [Fact]
    public async Task Force_release_of_one_slot_leaves_the_other_permits_and_the_next_permit_takes_that_slot()
    {
        // With a waiter, the force-released holder hearing 'forced': OperatorTests, for locks and semaphores alike.
        var key = Keys.Unique(nameof(Force_release_of_one_slot_leaves_the_other_permits_and_the_next_permit_takes_that_slot));
        var permits = new List<Permit>();
        for (var i = 0; i < 3; i++)
        {
            permits.Add(await Client.AcquirePermitOkAsync(key, "limit=3&ttlMs=60000"));
        }

        Assert.Equal(HttpStatusCode.NoContent, (await Admin.SendAsync(HttpMethod.Delete, $"/admin/semaphores/{key}/1")).Status);
        var next = await Client.AcquirePermitOkAsync(key, "limit=3");

        Assert.Equal("forced", (await Client.CheckPermitAsync(key, permits[1].Token)).ReasonOf());
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckPermitAsync(key, permits[0].Token)).Status);
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckPermitAsync(key, permits[2].Token)).Status);
        Assert.Equal(1, next.Slot);
        Assert.True(next.FencingToken > permits[1].FencingToken);
    }

    [Fact]
    public async Task Force_release_of_a_free_slot_is_404_a_bad_slot_or_key_400_and_another_tenants_permit_is_not_touched()
    {
        var key = Keys.Unique(nameof(Force_release_of_a_free_slot_is_404_a_bad_slot_or_key_400_and_another_tenants_permit_is_not_touched));
        var shipping = await fixture.As(OperatorFixture.ShippingAdmin).AcquirePermitOkAsync(key, "limit=2");
        var ours = await Client.AcquirePermitOkAsync(key, "limit=2");

        Assert.Equal("permit_not_held", (await Admin.SendAsync(HttpMethod.Delete, $"/admin/semaphores/{key}/1")).AssertProblem(HttpStatusCode.NotFound, "permit_not_held").GetProperty("code").GetString());
        foreach (var slot in new[] { "x", "-1", "1.0", "%2B1", "10000", "99999999999", "0x1" })
        {
            var problem = (await Admin.SendAsync(HttpMethod.Delete, $"/admin/semaphores/{key}/{slot}")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
            Assert.True(problem.GetProperty("errors").TryGetProperty("slot", out _), slot);
        }

        (await Admin.SendAsync(HttpMethod.Delete, "/admin/semaphores/.dot/0")).AssertProblem(HttpStatusCode.BadRequest, "invalid_key");
        (await Admin.SendAsync(HttpMethod.Delete, $"/admin/semaphores/{key}/0?dryRun=true")).AssertProblem(HttpStatusCode.BadRequest, "invalid_parameter");
        Assert.Equal(HttpStatusCode.OK, (await Client.CheckPermitAsync(key, ours.Token)).Status);
        Assert.Equal(HttpStatusCode.OK, (await fixture.As(OperatorFixture.ShippingAdmin).CheckPermitAsync(key, shipping.Token)).Status);
    }
}

/// <summary>Semaphore operator endpoints with authentication off: listing open, force-release forbidden unless allowed.</summary>
public sealed class SemaphoreOperatorsWithoutAuthTests(ApiFixture fixture) : IClassFixture<ApiFixture>
{
    [Fact]
    public async Task Listing_is_open_and_force_release_is_403_forbidden()
    {
        var key = Keys.Unique(nameof(Listing_is_open_and_force_release_is_403_forbidden));
        var permit = await fixture.Client.AcquirePermitOkAsync(key, "limit=1");

        var pages = await Operators.ListAllAsync(fixture.Client, key, limit: 10, resource: "semaphores");
        var forced = await fixture.Client.SendAsync(HttpMethod.Delete, $"/admin/semaphores/{key}/0");

        Assert.Contains(pages.SelectMany(p => p), s => s.GetProperty("key").GetString() == key);
        Assert.Contains("Operators:AllowForceReleaseWithoutAuth", forced.AssertProblem(HttpStatusCode.Forbidden, "forbidden").GetProperty("detail").GetString(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await fixture.Client.CheckPermitAsync(key, permit.Token)).Status);
    }
}
