using System.Net;
using LockService.Core.Elections;
using LockService.Core.Leases;
using LockService.Tests.Api;
using LockService.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace LockService.Tests.Elections;

/// <summary>Elections with API keys: a key is required, and tenants elect and observe in key spaces of their own.</summary>
public sealed class ElectionTenantTests(AuthFixture fixture) : IClassFixture<AuthFixture>
{
    [Fact]
    public async Task Without_a_key_every_election_route_is_401_and_nothing_is_elected()
    {
        var name = Keys.Unique(nameof(Without_a_key_every_election_route_is_401_and_nothing_is_elected));

        (await fixture.Client.SendAsync(HttpMethod.Post, $"/elections/{name}")).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        (await fixture.Client.SendAsync(HttpMethod.Get, $"/elections/{name}")).AssertProblem(HttpStatusCode.Unauthorized, "unauthorized");
        await using var events = await ElectionEvents.OpenAsync(fixture.Client.Http, name);

        Assert.Equal(HttpStatusCode.Unauthorized, events.Status);
        Assert.Null(await fixture.Factory.Services.GetRequiredService<ElectionStore>().InspectAsync(LeaseName.Of(name)));
    }

    [Fact]
    public async Task Two_tenants_elect_their_own_leaders_of_one_name_and_observe_only_their_own()
    {
        var name = Keys.Unique(nameof(Two_tenants_elect_their_own_leaders_of_one_name_and_observe_only_their_own));
        var billing = fixture.As(AuthFixture.BillingKey);
        var shipping = fixture.As(AuthFixture.ShippingKey);
        await using var shippingEvents = await ElectionEvents.OpenAsync(shipping.Http, name);
        await shippingEvents.WaitForAsync(e => e.Name == "no-leader", "shipping's first event");

        var billingLeader = await billing.SendAsync(HttpMethod.Post, $"/elections/{name}?value=billing-1");
        var shippingLeader = await shipping.SendAsync(HttpMethod.Post, $"/elections/{name}?value=shipping-1");

        Assert.Equal(HttpStatusCode.Created, billingLeader.Status);
        Assert.Equal(HttpStatusCode.Created, shippingLeader.Status);
        var seen = await shippingEvents.WaitForAsync(e => e.Name == "leader", "shipping's leader");
        Assert.Equal("shipping-1", seen.Value);
        (await shipping.SendAsync(HttpMethod.Delete, $"/elections/{name}/{billingLeader.Json.GetProperty("token").GetString()}"))
            .AssertProblem(HttpStatusCode.NotFound, "not_leader");
        Assert.Equal("billing-1", (await billing.SendAsync(HttpMethod.Get, $"/elections/{name}")).Json.GetProperty("value").GetString());
        Assert.All(shippingEvents.Events, e => Assert.NotEqual("billing-1", e.Value));
    }
}
