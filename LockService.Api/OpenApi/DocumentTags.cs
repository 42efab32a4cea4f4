using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace LockService.Api.OpenApi;

/// <summary>
/// Declares every tag the operations use, each with a description, and a relative server, so that the document is
/// complete for tools that lint it or generate clients from it. The server is "/" because one document serves every
/// address the service is reached at (directly, behind a proxy, on another port): a client resolves it against the URL
/// it fetched the document from.
/// </summary>
internal sealed class DocumentTags : IDocumentFilter
{
    public const string Health = "Health";
    public const string Metrics = "Metrics";

    // The route tables name the other tags (LeaseRoutes.MapGroup, the /admin group); a tag missing here is caught by
    // the document's test, which requires a description for every tag an operation uses.
    private static readonly (string Name, string Description)[] Tags =
    [
        ("Locks", "Exclusive locks: acquire (optionally waiting in the server, or held for the life of an event stream), release, extend, inspect, and check or watch a token."),
        ("Semaphores", "Counting semaphores: up to 'limit' holders at once, each with its own token, slot and fencing token; otherwise used as locks are."),
        ("Read/write locks", "Read/write locks: many readers at once or one writer alone, waiting writers before new readers, one fencing sequence for both modes; otherwise used as locks are."),
        ("Elections", "Leader elections: campaign (a leader holds a lease whose fencing token is its term, and shows a value), proclaim, resign, check or watch a token, and follow who leads with an observe stream that reports every change, no-leader included."),
        ("Operators", "Operator endpoints under /admin: list the held locks, semaphores, read/write locks and led elections of the caller's tenant, force-release or force a leader out, and this instance's activity. With API keys they need a key whose role is admin."),
        (Health, "Liveness and readiness probes, open whatever Auth:ApiKeys holds."),
        (Metrics, "Prometheus metrics, open whatever Auth:ApiKeys holds."),
    ];

    public void Apply(OpenApiDocument swaggerDoc, DocumentFilterContext context)
    {
        swaggerDoc.Tags = new HashSet<OpenApiTag>(Tags.Select(t => new OpenApiTag { Name = t.Name, Description = t.Description }));
        swaggerDoc.Servers = [new OpenApiServer { Url = "/", Description = "The address this document was fetched from." }];
    }
}
