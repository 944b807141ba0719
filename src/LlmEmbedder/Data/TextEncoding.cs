using System.Globalization;
using System.Text;

namespace LlmEmbedder.Data;

/// <summary>
/// The character encoding text inputs are read in (--encoding): strict UTF-8 unless told otherwise. Every
/// encoding is strict: a byte sequence it cannot decode is an error, never a silent U+FFFD.
/// </summary>
public sealed class TextEncoding
{
    /// <summary>Names to show when a name is unknown: what Chinese data usually comes in.</summary>
    public const string Examples = "utf-8, gb18030, gbk, big5, utf-16, utf-16le, utf-16be";

    // Python's codec names that .NET spells differently, so the name that works with open(..., encoding=) works here.
    private static readonly Dictionary<string, string> Aliases = new(StringComparer.Ordinal)
    {
        ["utf8"] = "utf-8", ["u8"] = "utf-8", ["utf-8-sig"] = "utf-8", ["utf8-sig"] = "utf-8",
        ["utf16"] = "utf-16", ["utf16le"] = "utf-16le", ["utf16be"] = "utf-16be",
        ["utf32"] = "utf-32", ["utf32le"] = "utf-32le", ["utf32be"] = "utf-32be",
        ["latin-1"] = "iso-8859-1", ["l1"] = "iso-8859-1", ["936"] = "gbk",
    };

    static TextEncoding() => Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);

    private readonly bool followsByteOrderMark;

    private TextEncoding(string name, Encoding encoding, bool followsByteOrderMark = false)
    {
        Name = name;
        Encoding = encoding;
        this.followsByteOrderMark = followsByteOrderMark;
    }

    /// <summary>Strict UTF-8, the default.</summary>
    public static TextEncoding Utf8 { get; } = new("UTF-8", new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true));

    /// <summary>The name for messages: "UTF-8", or the name the user gave.</summary>
    public string Name { get; }

    /// <summary>The strict .NET encoding (exception fallback).</summary>
    public Encoding Encoding { get; }

    public bool IsUtf8 => Encoding.CodePage == Encoding.UTF8.CodePage;

    /// <summary>An encoding by name (gb18030, gbk, big5, utf-16, cp936, Python's spellings too); unknown names are one-line errors.</summary>
    public static TextEncoding Parse(string name)
    {
        var key = name.Trim().ToLowerInvariant().Replace('_', '-');
        key = Aliases.GetValueOrDefault(key, key);
        if (key == "utf-8") return Utf8;
        try
        {
            var encoding = key.StartsWith("cp", StringComparison.Ordinal) && int.TryParse(key.AsSpan(2), NumberStyles.None, CultureInfo.InvariantCulture, out var codePage)
                ? Encoding.GetEncoding(codePage, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback)
                : Encoding.GetEncoding(key, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback);
            return encoding.CodePage == Encoding.UTF8.CodePage ? Utf8 : new TextEncoding(name.Trim(), encoding, key is "utf-16" or "utf-32");
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException)
        {
            throw new EmbedderException($"--encoding '{name}': unknown encoding (for example {Examples})");
        }
    }

    /// <summary>
    /// The encoding for content that starts with <paramref name="start"/>: "utf-16" and "utf-32" follow a big-endian
    /// byte order mark, as Python's codecs of those names do; every other name means exactly itself.
    /// </summary>
    internal Encoding ForContent(ReadOnlySpan<byte> start) => followsByteOrderMark switch
    {
        true when Encoding.CodePage == 1200 && start.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]) =>
            Encoding.GetEncoding(1201, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback),
        true when Encoding.CodePage == 12000 && start.StartsWith((ReadOnlySpan<byte>)[0x00, 0x00, 0xFE, 0xFF]) =>
            Encoding.GetEncoding(12001, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback),
        _ => Encoding,
    };

    public override string ToString() => Name;
}
