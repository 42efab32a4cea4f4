using System.ComponentModel.DataAnnotations;
using System.Text.RegularExpressions;

namespace LockService.Api.Auth;

/// <summary>API keys and their tenants, bound from the <c>Auth</c> section. No keys: authentication is off.</summary>
internal sealed partial class AuthOptions : IValidatableObject
{
    public const string SectionName = "Auth";

    public List<ApiKeyEntry> ApiKeys { get; set; } = [];

    public bool Enabled => ApiKeys.Count > 0;

    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < ApiKeys.Count; i++)
        {
            var entry = ApiKeys[i];
            if (string.IsNullOrWhiteSpace(entry.Key) || entry.Key.Length < 16)
            {
                yield return new ValidationResult($"Auth:ApiKeys:{i}:Key must be at least 16 characters.");
            }
            else if (!seen.Add(entry.Key))
            {
                yield return new ValidationResult($"Auth:ApiKeys:{i}:Key is configured twice.");
            }

            if (string.IsNullOrWhiteSpace(entry.Tenant))
            {
                yield return new ValidationResult($"Auth:ApiKeys:{i}:Tenant must be set: every API key belongs to a tenant.");
            }
            else if (!TenantPattern().IsMatch(entry.Tenant))
            {
                yield return new ValidationResult($"Auth:ApiKeys:{i}:Tenant must be 1-64 characters from A-Z a-z 0-9 . _ -.");
            }

            if (entry.Role is not (ApiKeyRoles.Client or ApiKeyRoles.Admin))
            {
                yield return new ValidationResult($"Auth:ApiKeys:{i}:Role must be '{ApiKeyRoles.Client}' (the default) or '{ApiKeyRoles.Admin}'.");
            }
        }
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex TenantPattern();
}

/// <summary>One API key, the tenant whose locks it may touch, and its role.</summary>
internal sealed class ApiKeyEntry
{
    public string Key { get; set; } = string.Empty;

    public string Tenant { get; set; } = string.Empty;

    /// <summary><c>client</c> (the lock API) or <c>admin</c> (also the operator endpoints, within its tenant).</summary>
    public string Role { get; set; } = ApiKeyRoles.Client;
}

/// <summary>The roles an API key can have.</summary>
internal static class ApiKeyRoles
{
    public const string Client = "client";
    public const string Admin = "admin";
}
