using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace LockService.Tests.Clients;

/// <summary>
/// A reverse proxy on a real loopback port in front of the service, as a load balancer is: it forwards every request
/// (long watches included) until <see cref="Maintenance"/> is set, then answers everything itself with what a proxy's
/// maintenance page is, a <c>200 text/html</c> (or <see cref="MaintenanceStatus"/>), never reaching the service.
/// </summary>
internal sealed class MaintenanceProxy : IAsyncDisposable
{
    private const string Page = "<!DOCTYPE html><html><body><h1>Down for maintenance</h1><p>Back soon.</p></body></html>";

    private static readonly string[] RequestHeaders = ["Authorization", "Idempotency-Key", "Accept"];
    private static readonly string[] ResponseHeaders = ["Location", "Retry-After"];

    private readonly WebApplication _app;
    private readonly HttpClient _upstream;
    private volatile bool _maintenance;
    private int _pagesServed;
    private int _extendsAnswered;

    private MaintenanceProxy(WebApplication app, HttpClient upstream) => (_app, _upstream) = (app, upstream);

    /// <summary>The proxy's address (what clients are given instead of the service's).</summary>
    public Uri BaseAddress => new(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First() + "/");

    /// <summary>While true, every request gets the maintenance page; the service sees none of them.</summary>
    public bool Maintenance
    {
        get => _maintenance;
        set => _maintenance = value;
    }

    /// <summary>The status of the maintenance page: 200 by default; 201 to answer an acquire as if it succeeded.</summary>
    public int MaintenanceStatus { get; set; } = StatusCodes.Status200OK;

    /// <summary>How many requests got the maintenance page.</summary>
    public int PagesServed => Volatile.Read(ref _pagesServed);

    /// <summary>How many extends (PATCH: a held lease's renewals) the service answered through the proxy, their answer sent on.</summary>
    public int ExtendsAnswered => Volatile.Read(ref _extendsAnswered);

    /// <summary>Starts a proxy to <paramref name="upstream"/> (null: none, the page for everything from the start).</summary>
    public static async Task<MaintenanceProxy> StartAsync(Uri? upstream)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var proxy = new MaintenanceProxy(app, new HttpClient { BaseAddress = upstream ?? new Uri("http://127.0.0.1:9/"), Timeout = Timeout.InfiniteTimeSpan })
        {
            Maintenance = upstream is null,
        };
        app.Run(proxy.HandleAsync);
        await app.StartAsync();
        return proxy;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        _upstream.Dispose();
    }

    private async Task HandleAsync(HttpContext context)
    {
        if (_maintenance)
        {
            Interlocked.Increment(ref _pagesServed);
            context.Response.StatusCode = MaintenanceStatus;
            context.Response.ContentType = "text/html; charset=utf-8";
            await context.Response.WriteAsync(Page, context.RequestAborted);
            return;
        }

        using var request = new HttpRequestMessage(new HttpMethod(context.Request.Method), context.Request.Path.ToUriComponent().TrimStart('/') + context.Request.QueryString);
        foreach (var name in RequestHeaders)
        {
            if (context.Request.Headers.TryGetValue(name, out var values))
            {
                request.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        if (context.Request.ContentLength > 0 || context.Request.Headers.TransferEncoding.Count > 0)
        {
            request.Content = new StreamContent(context.Request.Body);
            request.Content.Headers.TryAddWithoutValidation("Content-Type", context.Request.ContentType);
        }

        using var response = await _upstream.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, context.RequestAborted);
        context.Response.StatusCode = (int)response.StatusCode;
        foreach (var name in ResponseHeaders)
        {
            if (response.Headers.TryGetValues(name, out var values))
            {
                context.Response.Headers[name] = values.ToArray();
            }
        }

        if (response.Content.Headers.ContentType is { } type)
        {
            context.Response.ContentType = type.ToString();
        }

        await response.Content.CopyToAsync(context.Response.Body, context.RequestAborted);
        if (HttpMethods.IsPatch(context.Request.Method))
        {
            Interlocked.Increment(ref _extendsAnswered);
        }
    }
}
