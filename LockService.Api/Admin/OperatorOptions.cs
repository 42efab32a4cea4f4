namespace LockService.Api.Admin;

/// <summary>The operator endpoints' settings, bound from the <c>Operators</c> section.</summary>
internal sealed class OperatorOptions
{
    public const string SectionName = "Operators";

    /// <summary>
    /// Allows <c>DELETE /admin/locks/{key}</c> while authentication is off. Off by default: without API keys anyone who
    /// reaches the service could take every lock from its holder.
    /// </summary>
    public bool AllowForceReleaseWithoutAuth { get; set; }
}

/// <summary>The dashboard's settings, bound from the <c>Ui</c> section.</summary>
internal sealed class UiOptions
{
    public const string SectionName = "Ui";

    /// <summary>Serves the dashboard at <c>/ui</c>.</summary>
    public bool Enabled { get; set; } = true;
}
