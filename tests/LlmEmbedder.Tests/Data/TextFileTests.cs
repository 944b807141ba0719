using System.Text;
using LlmEmbedder.Data;

namespace LlmEmbedder.Tests.Data;

/// <summary>
/// Strict decoding of text inputs. The files in Data/Encodings were written by Python's codecs (str.encode with
/// "gb18030", "utf-16", "utf-8-sig"), so they are an independent reference for what each encoding's bytes mean.
/// </summary>
public sealed class TextFileTests : IDisposable
{
    private const string Utf8Hint = "if the file is GB18030/GBK or UTF-16, pass --encoding gb18030 or --encoding utf-16";
    private static readonly string EncodingsDir = Path.Combine(TestPaths.RepoRoot, "tests", "LlmEmbedder.Tests", "Data", "Encodings");
    private readonly string dir = TestPaths.NewTempDir("textfile");

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private static string Fixture(string name) => Path.Combine(EncodingsDir, name);

    private static List<string> Utf8Lines() => TextFile.ReadLines(Fixture("zh.utf8.txt")).ToList();

    private string Write(byte[] bytes, string name = "input.txt")
    {
        var path = Path.Combine(dir, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string ErrorOf(Func<IEnumerable<string>> read) =>
        Assert.Throws<EmbedderException>(() => read().ToList()).Message;

    [Fact]
    public void TheUtf8FixtureHasItsFiveLines()
    {
        var lines = Utf8Lines();
        Assert.Equal(5, lines.Count);
        Assert.Equal("今天星期几", lines[0]);
        Assert.Equal("罕见字𠀀与表情😀，欧元€", lines[3]);
    }

    [Theory]
    [InlineData("zh.gb18030.txt", "gb18030")]
    [InlineData("zh.utf16.txt", "utf-16")]
    [InlineData("zh.utf8-bom.txt", "utf-8")]
    public void PythonEncodedFileReadWithItsEncodingGivesTheUtf8Lines(string fixture, string encoding)
    {
        Assert.Equal(Utf8Lines(), TextFile.ReadLines(Fixture(fixture), TextEncoding.Parse(encoding)).ToList());
    }

    [Fact]
    public void DotNetsGb18030BytesAreThoseOfPython()
    {
        // The CLI tests make GB18030 input with .NET; this ties those bytes to Python's codec.
        var utf8Text = File.ReadAllText(Fixture("zh.utf8.txt"), new UTF8Encoding(false));
        Assert.Equal(File.ReadAllBytes(Fixture("zh.gb18030.txt")), TextEncoding.Parse("gb18030").Encoding.GetBytes(utf8Text));
    }

    [Theory]
    [InlineData("zh.gb18030.txt", "byte 0xBD at column 1")]
    [InlineData("zh.utf16.txt", "byte 0xFF at column 1")]
    public void NonUtf8FileWithoutEncodingStopsAtLineOne(string fixture, string what)
    {
        var path = Fixture(fixture);
        Assert.Equal($"{path}:1: not valid UTF-8 ({what}); {Utf8Hint}", ErrorOf(() => TextFile.ReadLines(path)));
    }

    [Fact]
    public void Utf16BigEndianWithByteOrderMarkIsReadWithUtf16()
    {
        var text = string.Join('\n', Utf8Lines()) + "\n";
        var path = Write([0xFE, 0xFF, .. Encoding.BigEndianUnicode.GetBytes(text)]);
        Assert.Equal(Utf8Lines(), TextFile.ReadLines(path, TextEncoding.Parse("utf-16")).ToList());
        Assert.Equal(Utf8Lines(), TextFile.ReadLines(path, TextEncoding.Parse("utf-16be")).ToList());
    }

    [Fact]
    public void InvalidByteOnLineThreeIsReportedAtLineThreeAndItsColumn()
    {
        var path = Write([.. "第一行\n第二行\n第三"u8, 0xFF, .. "行\n第四行\n"u8]);
        Assert.Equal($"{path}:3: not valid UTF-8 (byte 0xFF at column 3); {Utf8Hint}", ErrorOf(() => TextFile.ReadLines(path)));
    }

    [Fact]
    public void TruncatedSequenceNamesItsBytes()
    {
        // 中 is E4 B8 AD; without its last byte, the next character shows it is cut short.
        var path = Write([.. "ab\n"u8, 0xE4, 0xB8, .. "c\n"u8]);
        Assert.Equal($"{path}:2: not valid UTF-8 (bytes 0xE4 0xB8 at column 1); {Utf8Hint}", ErrorOf(() => TextFile.ReadLines(path)));
    }

    [Fact]
    public void NulByteIsRejectedWithItsLine()
    {
        var path = Write([.. "fine\nbin"u8, 0x00, .. "ary\n"u8]);
        Assert.Equal($"{path}:2: not valid UTF-8 (NUL byte at column 4); a binary file cannot be read as text, and a UTF-16 file needs --encoding utf-16",
            ErrorOf(() => TextFile.ReadLines(path)));
    }

    [Fact]
    public void BinaryFileIsRejected()
    {
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        var path = Write(bytes, "model.bin");
        Assert.Matches($@"^{System.Text.RegularExpressions.Regex.Escape(path)}:\d+: not valid UTF-8 \((byte|bytes|NUL byte) .*column \d+\); ",
            ErrorOf(() => TextFile.ReadLines(path)));
    }

    [Fact]
    public void LinesEndAtNewlineOnly()
    {
        // U+2028, U+0085 and a lone \r are text; \r\n ends a line like \n; a final newline adds no empty line.
        var path = Write(Encoding.UTF8.GetBytes("a\u2028b\r\nc\u0085d\n\ne\rf\n"));
        Assert.Equal(["a\u2028b", "c\u0085d", "", "e\rf"], TextFile.ReadLines(path).ToList());
        Assert.Equal(["x", ""], TextFile.ReadLines(Write("x\n\n"u8.ToArray())).ToList());
        Assert.Equal(["no final newline"], TextFile.ReadLines(Write("no final newline"u8.ToArray())).ToList());
        Assert.Empty(TextFile.ReadLines(Write([])));
        Assert.Empty(TextFile.ReadLines(Write([0xEF, 0xBB, 0xBF])));
    }

    [Fact]
    public void JsonlStringWithRawLineSeparatorStaysOneRow()
    {
        var path = Write(Encoding.UTF8.GetBytes("{\"text\": \"上一句\u2028下一句\"}\n{\"text\": \"第二行\"}\n"), "input.jsonl");
        Assert.Equal(["上一句\u2028下一句", "第二行"], TextInput.Read(path));
    }

    /// <summary>An error far into a file (past the decoder's 64 KB chunks, across which sequences are split) is placed exactly.</summary>
    [Theory]
    [InlineData("utf-8")]
    [InlineData("gb18030")]
    [InlineData("utf-16")]
    public void ErrorPastManyChunksIsPlacedExactly(string name)
    {
        var encoding = TextEncoding.Parse(name);
        var lines = Enumerable.Range(0, 9000).Select(i => $"第{i}行：罕见字𠀀和😀").ToList();
        const int badLine = 8000;
        var before = encoding.Encoding.GetBytes(string.Join('\n', lines.Take(badLine - 1)) + "\n第" + "7");
        var after = encoding.Encoding.GetBytes(lines[badLine - 1][2..] + "\n" + string.Join('\n', lines.Skip(badLine)) + "\n");
        // An invalid unit in each encoding: a lone continuation byte, a lead byte before a newline, a lone low surrogate.
        byte[] bad = name switch { "utf-8" => [0x80], "gb18030" => [0x81, 0x0A], _ => [0x00, 0xDC] };
        var path = Write([.. before, .. bad, .. after]);
        var label = encoding.IsUtf8 ? "UTF-8" : name;
        Assert.StartsWith($"{path}:{badLine}: not valid {label} (", ErrorOf(() => TextFile.ReadLines(path, encoding)));
        Assert.Contains(" at column 3); ", ErrorOf(() => TextFile.ReadLines(path, encoding)));
        // The same bytes without the bad unit read back as written.
        var good = Write([.. before, .. after], "good.txt");
        var read = TextFile.ReadLines(good, encoding).ToList();
        Assert.Equal(lines.Count, read.Count);
        Assert.Equal(lines[^1], read[^1]);
        Assert.Equal("第7999行：罕见字𠀀和😀", read[badLine - 1]);
    }

    [Fact]
    public void InvalidBytesInAnotherEncodingNameThatEncoding()
    {
        var gb18030 = TextEncoding.Parse("gb18030");
        var path = Write([.. gb18030.Encoding.GetBytes("第一行\n第二"), 0x81, 0x7F, .. gb18030.Encoding.GetBytes("行\n")]);
        Assert.Equal($"{path}:2: not valid gb18030 (byte 0x81 at column 3); check that the file is gb18030 (--encoding; the default is utf-8)",
            ErrorOf(() => TextFile.ReadLines(path, gb18030)));
    }

    [Fact]
    public void StdinIsNamedAndReadWhole()
    {
        using var stdin = new MemoryStream([.. "一\n二\n"u8, 0xC3, .. "\n"u8]);
        Assert.Equal($"<stdin>:3: not valid UTF-8 (byte 0xC3 at column 1); {Utf8Hint}",
            ErrorOf(() => TextFile.ReadLines(stdin, TextFile.StdinName)));
    }

    [Theory]
    [InlineData("utf-8", 65001)]
    [InlineData("UTF8", 65001)]
    [InlineData("utf_8_sig", 65001)]
    [InlineData("gb18030", 54936)]
    [InlineData("GBK", 936)]
    [InlineData("cp936", 936)]
    [InlineData("gb2312", 936)]
    [InlineData("big5", 950)]
    [InlineData("utf-16", 1200)]
    [InlineData("utf_16le", 1200)]
    [InlineData("utf-16be", 1201)]
    [InlineData("latin-1", 28591)]
    public void EncodingNamesAsPythonSpellsThem(string name, int codePage)
    {
        Assert.Equal(codePage, TextEncoding.Parse(name).Encoding.CodePage);
    }

    [Fact]
    public void UnknownEncodingIsOneLineWithExamples()
    {
        var error = Assert.Throws<EmbedderException>(() => TextEncoding.Parse("klingon"));
        Assert.Equal("--encoding 'klingon': unknown encoding (for example utf-8, gb18030, gbk, big5, utf-16, utf-16le, utf-16be)", error.Message);
    }

    [Fact]
    public void InstructionFileInGb18030NeedsItsEncoding()
    {
        var gb18030 = TextEncoding.Parse("gb18030");
        var path = Write(gb18030.Encoding.GetBytes("{\"zh\": {\n  \"instruction\": {\"icl\": {\"query\": \"为这个句子生成表示：\", \"key\": \"\"}}}}\n"), "instructions.json");
        Assert.Equal("为这个句子生成表示：", InstructionSet.BuiltIn.WithFile(path, gb18030).Get("zh").InstructionFor("icl").Query);
        var error = Assert.Throws<EmbedderException>(() => InstructionSet.BuiltIn.WithFile(path));
        // 为 is CE AA in GB18030, which happens to be valid UTF-8 (Ϊ); 这 (D5 E2) is not.
        Assert.Equal($"{path}:2: not valid UTF-8 (byte 0xD5 at column 38); {Utf8Hint}", error.Message);
    }
}
