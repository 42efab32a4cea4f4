using Microsoft.Extensions.Options;

namespace LockService.Api.Admin;

/// <summary>
/// The operators' dashboard at /ui: one HTML page, its script and its style, embedded in the assembly (no build step,
/// nothing fetched from elsewhere: it works offline). The page itself is open; its calls to /admin carry the API key
/// the operator types, kept in the browser's session storage only.
/// </summary>
internal static class Dashboard
{
    // The page may load only its own script and style and talk only to this service; no inline script, no frames.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    private static readonly Dictionary<string, (string Resource, string ContentType)> Files = new(StringComparer.Ordinal)
    {
        [""] = ("index.html", "text/html; charset=utf-8"),
        ["app.js"] = ("app.js", "text/javascript; charset=utf-8"),
        ["app.css"] = ("app.css", "text/css; charset=utf-8"),
    };

    public static IEndpointRouteBuilder MapDashboard(this IEndpointRouteBuilder app)
    {
        if (!app.ServiceProvider.GetRequiredService<IOptions<UiOptions>>().Value.Enabled)
        {
            return app;
        }

        // Read once at start: three small files.
        var contents = Files.ToDictionary(f => f.Key, f => (Bytes: Read(f.Value.Resource), f.Value.ContentType), StringComparer.Ordinal);
        app.MapGet("/ui", (HttpContext http) => Serve(http, contents[""])).WithName("dashboard").ExcludeFromDescription();
        app.MapGet("/ui/{file}", (string file, HttpContext http) =>
            file.Length > 0 && contents.TryGetValue(file, out var content) ? Serve(http, content) : Results.NotFound())
            .WithName("dashboard-file").ExcludeFromDescription();
        return app;
    }

    private static IResult Serve(HttpContext http, (byte[] Bytes, string ContentType) content)
    {
        var headers = http.Response.Headers;
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-cache";
        return Results.Bytes(content.Bytes, content.ContentType);
    }

    private static byte[] Read(string name)
    {
        using var stream = typeof(Dashboard).Assembly.GetManifestResourceStream("LockService.Api.Dashboard." + name)
            ?? throw new InvalidOperationException($"The dashboard's {name} is not embedded in the assembly.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
