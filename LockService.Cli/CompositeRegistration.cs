namespace LockService.Cli;

/// <summary>Signal registrations (or anything else) given up together.</summary>
internal sealed class CompositeRegistration(IReadOnlyList<IDisposable> parts) : IDisposable
{
    public void Dispose()
    {
        foreach (var part in parts)
        {
            part.Dispose();
        }
    }
}
