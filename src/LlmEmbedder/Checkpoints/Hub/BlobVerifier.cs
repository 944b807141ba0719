using System.Security.Cryptography;
using System.Text;

namespace LlmEmbedder.Checkpoints.Hub;

/// <summary>
/// Checks a downloaded file against the hub's ETag, which is its content hash: SHA-256 of the bytes for LFS files
/// (64 hex digits), the git blob id SHA-1("blob &lt;size&gt;\0" + bytes) for files kept in git (40 hex digits).
/// Other ETags (some mirrors) are not hashes and are not checked.
/// </summary>
internal sealed class BlobVerifier : IDisposable
{
    private readonly IncrementalHash hash;
    private readonly string expectedHex;

    private BlobVerifier(IncrementalHash hash, string expectedHex)
    {
        this.hash = hash;
        this.expectedHex = expectedHex;
    }

    public static BlobVerifier? For(string etag, long? size)
    {
        if (!etag.All(char.IsAsciiHexDigit))
            return null;
        if (etag.Length == 64)
            return new BlobVerifier(IncrementalHash.CreateHash(HashAlgorithmName.SHA256), etag.ToLowerInvariant());
        if (etag.Length == 40 && size is long length)
        {
            var gitBlob = new BlobVerifier(IncrementalHash.CreateHash(HashAlgorithmName.SHA1), etag.ToLowerInvariant());
            gitBlob.hash.AppendData(Encoding.ASCII.GetBytes($"blob {length}\0"));
            return gitBlob;
        }
        return null;
    }

    public void Append(ReadOnlySpan<byte> bytes) => hash.AppendData(bytes);

    /// <summary>Feeds what an earlier attempt already wrote, from the start of the stream to its end.</summary>
    public async Task AppendAsync(Stream written, CancellationToken cancellation)
    {
        written.Seek(0, SeekOrigin.Begin);
        var buffer = new byte[1 << 20];
        int read;
        while ((read = await written.ReadAsync(buffer, cancellation)) > 0)
            hash.AppendData(buffer, 0, read);
    }

    public void Dispose() => hash.Dispose();

    public bool Matches() => Convert.ToHexStringLower(hash.GetHashAndReset()) == expectedHex;
}
