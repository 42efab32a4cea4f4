using System.Globalization;

namespace LockService.Bench.Service;

/// <summary>Each connection is a file descriptor: too low a limit would show up as transport errors mid-run.</summary>
internal static class OpenFileLimit
{
    /// <summary>
    /// Throws a <see cref="SetupException"/> when this process may open fewer than <paramref name="neededHere"/>
    /// files, or the service (<paramref name="servicePid"/>, when given) fewer than <paramref name="neededThere"/>.
    /// </summary>
    public static void Check(int? servicePid, string what, int neededHere, int neededThere)
    {
        Check("this process", "self", what, neededHere);
        if (servicePid is int pid)
        {
            Check($"the service (pid {pid})", pid.ToString(CultureInfo.InvariantCulture), what, neededThere);
        }
    }

    private static void Check(string who, string pid, string what, int needed)
    {
        long? limit = Read(pid);
        if (limit < needed)
        {
            throw new SetupException(
                $"{who} may open {limit} files (ulimit -n), and {what} need about {needed}: " +
                "raise it with `ulimit -n` in the shell that starts it, or lower -c");
        }
    }

    private static long? Read(string pid)
    {
        try
        {
            foreach (string line in File.ReadLines($"/proc/{pid}/limits"))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    string soft = line["Max open files".Length..].TrimStart().Split(' ', 2)[0];
                    return long.TryParse(soft, NumberStyles.None, CultureInfo.InvariantCulture, out long value) ? value : null;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return null; // unknown or unlimited
    }
}
