using System.Runtime.CompilerServices;
using System.Text.Json;

namespace LockService.Bench.Http;

/// <summary>
/// Sends one request at a time for one loop, reusing its body buffer, its token characters and its
/// timeout source, so that a request costs the framework's own objects and little more. Not thread-safe.
/// </summary>
internal sealed class Caller(HttpClient http, int initialBufferSize = 1024) : IDisposable
{
    private const int MaxBody = 1 << 20;

    private readonly char[] _token = new char[64];
    private byte[] _body = new byte[initialBufferSize];
    private int _tokenLength;
    private CancellationTokenSource _timeout = new();

    /// <summary>The token of the last 201 this caller received.</summary>
    public ReadOnlySpan<char> Token => _token.AsSpan(0, _tokenLength);

    /// <summary>The <c>reason</c> of the last 404 this caller read (<c>readBody</c>), null when it had none.</summary>
    public string? Reason { get; private set; }

    public void Dispose() => _timeout.Dispose();

    /// <summary>
    /// Sends the request and waits for the whole response. With <paramref name="readBody"/> a 201's body is
    /// parsed for its token (a 201 without one becomes <see cref="Outcome.BadBody"/>), a 404's for its reason.
    /// <paramref name="cancel"/> ends the request as <see cref="Outcome.Canceled"/>, the timeout as <see cref="Outcome.Timeout"/>.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<Outcome> SendAsync(HttpMethod method, Uri uri, TimeSpan timeout, bool readBody, CancellationToken cancel)
    {
        _tokenLength = 0;
        Reason = null;
        long started = Outcome.Now();
        long headersAt = 0;
        _timeout.CancelAfter(timeout);
        var registration = cancel.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _timeout);
        try
        {
            using var request = new HttpRequestMessage(method, uri);
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, _timeout.Token).ConfigureAwait(false);
            headersAt = Outcome.Now();
            int status = (int)response.StatusCode;
            if (readBody && status == 201)
            {
                int length = await ReadBodyAsync(response.Content, _timeout.Token).ConfigureAwait(false);
                if (length < 0 || !TryParseToken(_body.AsSpan(0, length)))
                {
                    status = Outcome.BadBody;
                }
            }
            else if (readBody && status == 404)
            {
                int length = await ReadBodyAsync(response.Content, _timeout.Token).ConfigureAwait(false);
                Reason = length < 0 ? null : LockJson.ReadString(_body.AsSpan(0, length), "reason"u8);
            }

            return new Outcome(status, started, headersAt, Outcome.Now());
        }
        catch (OperationCanceledException)
        {
            int status = cancel.IsCancellationRequested ? Outcome.Canceled : Outcome.Timeout;
            return Failed(status, started, headersAt);
        }
        catch (HttpRequestException)
        {
            return Failed(Outcome.Transport, started, headersAt);
        }
        catch (IOException)
        {
            return Failed(Outcome.Transport, started, headersAt);
        }
        finally
        {
            registration.Dispose();
            if (!_timeout.TryReset())
            {
                _timeout.Dispose();
                _timeout = new CancellationTokenSource();
            }
        }
    }

    private static Outcome Failed(int status, long started, long headersAt)
    {
        long now = Outcome.Now();
        return new Outcome(status, started, headersAt == 0 ? now : headersAt, now);
    }

    /// <summary>Reads the body into the reused buffer; -1 when it is larger than any lock answer could be.</summary>
    private async ValueTask<int> ReadBodyAsync(HttpContent content, CancellationToken cancellationToken)
    {
        using var stream = await content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        int total = 0;
        while (true)
        {
            if (total == _body.Length)
            {
                if (_body.Length >= MaxBody)
                {
                    return -1;
                }

                Array.Resize(ref _body, _body.Length * 2);
            }

            int read = await stream.ReadAsync(_body.AsMemory(total), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return total;
            }

            total += read;
        }
    }

    private bool TryParseToken(ReadOnlySpan<byte> json)
    {
        var reader = new Utf8JsonReader(json);
        if (!LockJson.TryFindString(ref reader, "token"u8) || reader.ValueSpan.Length > _token.Length)
        {
            return false;
        }

        _tokenLength = reader.CopyString(_token);
        if (!LockJson.IsToken(Token))
        {
            _tokenLength = 0;
            return false;
        }

        return true;
    }
}
