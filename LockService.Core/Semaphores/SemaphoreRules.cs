using LockService.Core.Locks;

namespace LockService.Core.Semaphores;

/// <summary>The rule a semaphore request adds to a lock's (<see cref="LockRules"/>): its limit.</summary>
public static class SemaphoreRules
{
    /// <summary>The limit parameter's name.</summary>
    public const string Limit = "limit";

    /// <summary>Adds an error (and returns false) unless <paramref name="limit"/> is given and is 1 .. <see cref="SemaphoreOptions.MaxLimit"/>.</summary>
    public static bool CheckLimit(long? limit, SemaphoreOptions options, ref RequestErrors? errors)
    {
        if (limit is null)
        {
            RequestErrors.Add(ref errors, Limit, $"'limit' is required: how many permits may be held at once, 1 to {options.MaxLimit}.");
            return false;
        }

        if (limit < 1 || limit > options.MaxLimit)
        {
            RequestErrors.Add(ref errors, Limit, $"'limit' must be between 1 and {options.MaxLimit}; got {limit}.");
            return false;
        }

        return true;
    }
}
