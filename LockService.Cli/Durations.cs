using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.RegularExpressions;

namespace LockService.Cli;

/// <summary>Durations as people type them: <c>500ms</c>, <c>30s</c>, <c>5m</c>, <c>2h</c>, <c>0</c>; <c>forever</c> where allowed.</summary>
internal static partial class Durations
{
    public static TimeSpan? Parse(ArgumentResult result, bool allowForever)
    {
        var text = result.Tokens.Count == 0 ? "" : result.Tokens[^1].Value;
        if (allowForever && text == "forever")
        {
            return Timeout.InfiniteTimeSpan;
        }

        if (text == "0")
        {
            return TimeSpan.Zero;
        }

        var match = Pattern().Match(text);
        if (match.Success && long.TryParse(match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n <= 365L * 24 * 3600 * 1000)
        {
            return match.Groups[2].Value switch
            {
                "ms" => TimeSpan.FromMilliseconds(n),
                "s" => TimeSpan.FromSeconds(n),
                "m" => TimeSpan.FromMinutes(n),
                _ => TimeSpan.FromHours(n),
            };
        }

        var flag = (result.Parent as OptionResult)?.IdentifierToken?.Value ?? "duration";
        result.AddError($"{flag} '{text}' is not a duration such as 500ms, 30s, 5m{(allowForever ? " or forever" : "")}");
        return null;
    }

    [GeneratedRegex("^([0-9]+)(ms|s|m|h)$", RegexOptions.CultureInvariant)]
    private static partial Regex Pattern();
}
