using System.ComponentModel.DataAnnotations;

namespace LockService.Core.Leases;

/// <summary>
/// The key prefixes of every kind of lease (<c>Locks:KeyPrefix</c>, <c>Semaphores:KeyPrefix</c>, ...). Each kind must own its
/// key space: with two prefixes equal, or one the start of another, a name of one kind lands on the keys of another (a
/// lock's fence string on a semaphore's fence hash), and a script meets a key of a type it never writes. Each kind adds its
/// prefix where it is registered; a bad pair stops the service at start, naming both settings.
/// </summary>
public sealed class KeySpaces : IValidatableObject
{
    private readonly List<(string Setting, string Prefix)> _prefixes = [];

    /// <summary>Adds a kind's prefix under the name of its setting (<c>Locks:KeyPrefix</c>).</summary>
    public KeySpaces Add(string setting, string prefix)
    {
        _prefixes.Add((setting, prefix));
        return this;
    }

    /// <inheritdoc />
    public IEnumerable<ValidationResult> Validate(ValidationContext validationContext)
    {
        for (var i = 0; i < _prefixes.Count; i++)
        {
            for (var j = i + 1; j < _prefixes.Count; j++)
            {
                var (a, b) = (_prefixes[i], _prefixes[j]);
                if (a.Prefix.StartsWith(b.Prefix, StringComparison.Ordinal) || b.Prefix.StartsWith(a.Prefix, StringComparison.Ordinal))
                {
                    yield return new ValidationResult(
                        $"{a.Setting} ('{a.Prefix}') and {b.Setting} ('{b.Prefix}') must differ and neither may start with the other: "
                        + "each kind must own its key space, else one kind's keys land on another's.",
                        [a.Setting, b.Setting]);
                }
            }
        }
    }
}
