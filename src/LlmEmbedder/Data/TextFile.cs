using System.Text;

namespace LlmEmbedder.Data;

/// <summary>
/// Reads every text input (training, eval and corpus JSONL, BEIR folders, encode input, stdin, instruction and mining
/// files) line by line with strict decoding: a byte sequence the encoding cannot decode, or a NUL, stops with
/// "file:line: not valid UTF-8 (byte 0xD6 at column 1); ..." instead of turning into U+FFFD or [UNK] tokens. A
/// byte order mark at the start is skipped.
/// </summary>
/// <remarks>
/// Lines end at '\n' only, and one '\r' before it is dropped: U+2028, U+0085 and a lone '\r' are characters of the
/// text (a JSON string may hold U+2028 raw). A final '\n' ends the last line rather than starting an empty one.
/// </remarks>
public static class TextFile
{
    /// <summary>The name of standard input in messages.</summary>
    public const string StdinName = "<stdin>";

    private const int ChunkBytes = 64 * 1024;

    /// <summary>The lines of a file, decoded lazily (a training file is streamed, not held whole).</summary>
    public static IEnumerable<string> ReadLines(string path, TextEncoding? encoding = null) =>
        Lines(() => new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan),
            path, encoding ?? TextEncoding.Utf8);

    /// <summary>
    /// The lines of a stream (not disposed), named <paramref name="name"/> in messages. It is read whole first: placing
    /// an error reads the start again, which stdin cannot do.
    /// </summary>
    public static IEnumerable<string> ReadLines(Stream input, string name, TextEncoding? encoding = null)
    {
        var copy = new MemoryStream();
        input.CopyTo(copy);
        copy.Position = 0;
        return Lines(() => copy, name, encoding ?? TextEncoding.Utf8);
    }

    /// <summary>A whole file as one string, its lines joined with '\n' (for JSON documents such as instruction files).</summary>
    public static string ReadAllText(string path, TextEncoding? encoding = null) => string.Join('\n', ReadLines(path, encoding));

    private static IEnumerable<string> Lines(Func<Stream> open, string name, TextEncoding textEncoding)
    {
        using var stream = open();
        long origin = stream.Position;
        var bytes = new byte[ChunkBytes];
        // Enough bytes to see a byte order mark before choosing the decoder.
        int read = stream.ReadAtLeast(bytes, 4, throwOnEndOfStream: false);
        var encoding = textEncoding.ForContent(bytes.AsSpan(0, read));
        var decoder = encoding.GetDecoder();
        var chars = new char[encoding.GetMaxCharCount(bytes.Length)];
        var pending = new StringBuilder();
        long consumed = 0, line = 1;
        bool atStart = true;
        while (true)
        {
            bool last = read == 0;
            int count = Decode(decoder, bytes, read, chars, last, new Place(stream, origin, consumed, encoding, name, textEncoding));
            consumed += read;
            int position = 0;
            if (atStart && count > 0)
            {
                atStart = false;
                if (chars[0] == '\uFEFF') position = 1;
            }
            int newline;
            while ((newline = Array.IndexOf(chars, '\n', position, count - position)) >= 0)
            {
                yield return Finish(pending, chars, position, newline - position, name, line, textEncoding);
                line++;
                position = newline + 1;
            }
            pending.Append(chars, position, count - position);
            if (last) break;
            read = stream.Read(bytes);
        }
        if (pending.Length > 0) yield return Finish(pending, chars, 0, 0, name, line, textEncoding);
    }

    /// <summary>What an error needs to say where it is: the stream to read again and how far the decoder had come.</summary>
    private sealed record Place(Stream Stream, long Origin, long Consumed, Encoding Encoding, string Name, TextEncoding TextEncoding);

    private static int Decode(Decoder decoder, byte[] bytes, int count, char[] chars, bool flush, Place place)
    {
        try
        {
            return decoder.GetChars(bytes, 0, count, chars, 0, flush);
        }
        catch (DecoderFallbackException e)
        {
            // Index is relative to this chunk (negative for bytes held over from the previous one).
            var (line, column) = Locate(place, place.Consumed + e.Index);
            var unknown = e.BytesUnknown ?? [];
            var what = unknown.Length switch
            {
                0 => "an undecodable byte",
                1 => $"byte 0x{unknown[0]:X2}",
                _ => "bytes " + string.Join(' ', unknown.Take(4).Select(b => $"0x{b:X2}")),
            };
            throw NotText(place.Name, line, column, what, place.TextEncoding);
        }
    }

    /// <summary>The 1-based line and character column of a byte offset: the start is decoded again up to it.</summary>
    private static (long Line, long Column) Locate(Place place, long offset)
    {
        var stream = place.Stream;
        stream.Position = place.Origin;
        var decoder = place.Encoding.GetDecoder();
        var bytes = new byte[ChunkBytes];
        var chars = new char[place.Encoding.GetMaxCharCount(bytes.Length)];
        long line = 1, column = 1, remaining = offset;
        bool atStart = true;
        while (remaining > 0)
        {
            int read = stream.Read(bytes, 0, (int)Math.Min(bytes.Length, remaining));
            if (read == 0) break;
            remaining -= read;
            int count;
            try
            {
                // Without flush: a sequence cut at the offset is the start of the bad one, not an error of its own.
                count = decoder.GetChars(bytes, 0, read, chars, 0, flush: false);
            }
            catch (DecoderFallbackException)
            {
                break; // a decoder that reported its error a few bytes late: the line is still the one reached
            }
            for (int i = 0; i < count; i++)
            {
                if (atStart)
                {
                    atStart = false;
                    if (chars[i] == '\uFEFF') continue;
                }
                if (chars[i] == '\n')
                {
                    line++;
                    column = 1;
                }
                else column++;
            }
        }
        return (line, column);
    }

    private static string Finish(StringBuilder pending, char[] chars, int start, int length, string name, long line, TextEncoding encoding)
    {
        string text;
        if (pending.Length == 0)
            text = new string(chars, start, length);
        else
        {
            text = pending.Append(chars, start, length).ToString();
            pending.Clear();
        }
        if (text.EndsWith('\r')) text = text[..^1];
        // NUL is valid UTF-8 but never text: it is what binary files and UTF-16 read as UTF-8 are full of.
        int nul = text.IndexOf('\0');
        if (nul >= 0)
            throw NotText(name, line, nul + 1, encoding.IsUtf8 ? "NUL byte" : "NUL character", encoding);
        return text;
    }

    private static EmbedderException NotText(string name, long line, long column, string what, TextEncoding encoding)
    {
        var hint = encoding.IsUtf8
            ? what.StartsWith("NUL", StringComparison.Ordinal)
                ? "a binary file cannot be read as text, and a UTF-16 file needs --encoding utf-16"
                : "if the file is GB18030/GBK or UTF-16, pass --encoding gb18030 or --encoding utf-16"
            : $"check that the file is {encoding.Name} (--encoding; the default is utf-8)";
        return EmbedderException.AtLine(name, line, $"not valid {encoding.Name} ({what} at column {column}); {hint}");
    }
}
