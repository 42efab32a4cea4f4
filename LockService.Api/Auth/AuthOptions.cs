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
        }
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex TenantPattern();
}

/// <summary>One API key and the tenant whose locks it may touch.</summary>
internal sealed class ApiKeyEntry
{
    public string Key { get; set; } = string.Empty;

    public string Tenant { get; set; } = string.Empty;
}
