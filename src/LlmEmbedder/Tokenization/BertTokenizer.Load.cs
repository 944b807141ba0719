using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LlmEmbedder.Tokenization;

public sealed partial class BertTokenizer
{
    /// <summary>When a folder does not say (HF then assumes "unlimited"), the BERT position limit.</summary>
    public const int DefaultModelMaxLength = 512;

    /// <summary>
    /// Loads the tokenizer of a Hugging Face model folder: tokenizer.json when present (what transformers'
    /// AutoTokenizer uses), otherwise vocab.txt; tokenizer_config.json supplies the settings either way.
    /// </summary>
    public static BertTokenizer FromDirectory(string modelDir)
    {
        if (!Directory.Exists(modelDir))
            throw new EmbedderException($"{modelDir}: model folder not found");
        var config = TokenizerConfig.Read(modelDir);
        var jsonPath = Path.Combine(modelDir, "tokenizer.json");
        var vocabPath = Path.Combine(modelDir, "vocab.txt");
        if (File.Exists(jsonPath))
            return FromTokenizerJson(jsonPath, config, File.Exists(vocabPath) ? vocabPath : null);
        if (File.Exists(vocabPath))
            return FromVocab(vocabPath, config);
        throw new EmbedderException($"{modelDir}: neither tokenizer.json nor vocab.txt found (is this a BERT model folder?)");
    }

    /// <summary>A tokenizer from a bare vocab.txt with the default BERT settings (special tokens [CLS], [SEP], ...).</summary>
    public static BertTokenizer FromVocabFile(string vocabPath, bool lowerCase = true) =>
        FromVocab(vocabPath, TokenizerConfig.Default with { Normalization = new BertNormalizerOptions(LowerCase: lowerCase) });

    /// <summary>A tokenizer from a Hugging Face tokenizer.json alone (BertNormalizer, BertPreTokenizer, WordPiece).</summary>
    public static BertTokenizer FromTokenizerJson(string path) => FromTokenizerJson(path, TokenizerConfig.Default, null);

    private static BertTokenizer FromVocab(string vocabPath, TokenizerConfig config)
    {
        var lines = ReadVocabLines(vocabPath);
        var vocab = new Dictionary<string, int>(lines.Length, StringComparer.Ordinal);
        for (var id = 0; id < lines.Length; id++)
            vocab[lines[id]] = id; // a token listed twice keeps its last line, as transformers' load_vocab does

        var addedTokens = config.AddedTokens ?? [.. config.SpecialTokenNames
            .Where(vocab.ContainsKey)
            .Select(name => new AddedToken(vocab[name], name))
            .DistinctBy(token => token.Id)
            .OrderBy(token => token.Id)];
        var idToToken = WithAddedTokens(lines, addedTokens);
        return new BertTokenizer(vocabPath, idToToken, vocab, config.Normalization, config.SpecialTokens, addedTokens, config.ModelMaxLength);
    }

    private static BertTokenizer FromTokenizerJson(string path, TokenizerConfig config, string? vocabPathForGaps)
    {
        var json = ReadJsonObject(path);
        EmbedderException Unsupported(string what) => new($"{path}: {what} is not supported (only BERT WordPiece tokenizers are)");
        string? TypeOf(JsonNode? node) => node is JsonObject o ? o["type"]?.GetValue<string>() : null;

        var model = json["model"] as JsonObject ?? throw new EmbedderException($"{path}: no \"model\" object");
        if (TypeOf(model) != "WordPiece") throw Unsupported($"model type '{TypeOf(model)}'");
        if (model["vocab"] is not JsonObject vocabJson) throw new EmbedderException($"{path}: model has no \"vocab\" object");
        var vocab = new Dictionary<string, int>(vocabJson.Count, StringComparer.Ordinal);
        foreach (var (token, id) in vocabJson)
            vocab[token] = id?.GetValue<int>() ?? throw new EmbedderException($"{path}: vocab entry \"{token}\" has no id");

        var normalization = json["normalizer"] switch
        {
            null => new BertNormalizerOptions(CleanText: false, TokenizeChineseChars: false, StripAccents: false, LowerCase: false),
            JsonObject n when TypeOf(n) == "BertNormalizer" => new BertNormalizerOptions(
                CleanText: n["clean_text"]?.GetValue<bool>() ?? true,
                TokenizeChineseChars: n["handle_chinese_chars"]?.GetValue<bool>() ?? true,
                StripAccents: n["strip_accents"]?.GetValue<bool?>(),
                LowerCase: n["lowercase"]?.GetValue<bool>() ?? true),
            var other => throw Unsupported($"normalizer '{TypeOf(other)}'"),
        };
        if (TypeOf(json["pre_tokenizer"]) != "BertPreTokenizer")
            throw Unsupported($"pre_tokenizer '{TypeOf(json["pre_tokenizer"]) ?? "null"}'");

        var (cls, sep) = json["post_processor"] switch
        {
            null => (config.SpecialTokens.Cls, config.SpecialTokens.Sep),
            JsonObject p when TypeOf(p) == "BertProcessing" =>
                (p["cls"]?[0]?.GetValue<string>() ?? config.SpecialTokens.Cls, p["sep"]?[0]?.GetValue<string>() ?? config.SpecialTokens.Sep),
            JsonObject p when TypeOf(p) == "TemplateProcessing" => SingleTemplate(p) ?? throw Unsupported("a post_processor template other than [CLS] $A [SEP]"),
            var other => throw Unsupported($"post_processor '{TypeOf(other)}'"),
        };
        var pad = json["padding"]?["pad_token"]?.GetValue<string>() ?? config.SpecialTokens.Pad;
        var unk = model["unk_token"]?.GetValue<string>() ?? config.SpecialTokens.Unk;

        var addedTokens = new List<AddedToken>();
        foreach (var node in json["added_tokens"]?.AsArray() ?? [])
            addedTokens.Add(ReadAddedToken(node as JsonObject ?? throw new EmbedderException($"{path}: added_tokens holds a non-object"), path));

        var ids = vocab.Values.Concat(addedTokens.Select(t => t.Id)).DefaultIfEmpty(-1).Max();
        var idToToken = new string?[ids + 1];
        foreach (var (token, id) in vocab) idToToken[id] = token;
        if (vocabPathForGaps is not null && vocab.Count < idToToken.Length)
        {
            // A vocab.txt with duplicated lines leaves ids that no token maps to; keep their lines for Save.
            var lines = ReadVocabLines(vocabPathForGaps);
            for (var id = 0; id < Math.Min(lines.Length, idToToken.Length); id++)
                idToToken[id] ??= lines[id];
        }
        idToToken = WithAddedTokens(idToToken, addedTokens);

        if (config.FromFile)
        {
            // transformers' BertTokenizerFast rebuilds the normalizer when tokenizer_config.json (or its defaults:
            // lowercase, strip_accents null, CJK on) disagrees with tokenizer.json, so the config wins.
            normalization = normalization with
            {
                LowerCase = config.Normalization.LowerCase,
                StripAccents = config.Normalization.StripAccents,
                TokenizeChineseChars = config.Normalization.TokenizeChineseChars,
            };
        }
        var tokenizer = new BertTokenizer(
            path, idToToken, vocab, normalization,
            config.SpecialTokens with { Cls = cls, Sep = sep, Pad = pad, Unk = unk },
            addedTokens, config.ModelMaxLength,
            model["continuing_subword_prefix"]?.GetValue<string>() ?? "##",
            model["max_input_chars_per_word"]?.GetValue<int>() ?? 100);
        return json["truncation"]?["direction"]?.GetValue<string>() == "Left" ? tokenizer.WithTruncationSide(TruncationSide.Left) : tokenizer;
    }

    /// <summary>The special tokens around $A in a TemplateProcessing "single" template, if it is [CLS] $A [SEP].</summary>
    private static (string Cls, string Sep)? SingleTemplate(JsonObject processor)
    {
        if (processor["single"] is not JsonArray { Count: 3 } single) return null;
        var first = single[0]?["SpecialToken"]?["id"]?.GetValue<string>();
        var sequence = single[1]?["Sequence"]?["id"]?.GetValue<string>();
        var last = single[2]?["SpecialToken"]?["id"]?.GetValue<string>();
        return first is null || last is null || sequence != "A" ? null : (first, last);
    }

    private static AddedToken ReadAddedToken(JsonObject node, string path)
    {
        var content = node["content"]?.GetValue<string>() ?? throw new EmbedderException($"{path}: an added token has no content");
        if (node["single_word"]?.GetValue<bool>() == true)
            throw new EmbedderException($"{path}: added token \"{content}\" has single_word true, which is not supported");
        return new AddedToken(
            Id: node["id"]?.GetValue<int>() ?? throw new EmbedderException($"{path}: added token \"{content}\" has no id"),
            Content: content,
            Special: node["special"]?.GetValue<bool>() ?? false,
            Normalized: node["normalized"]?.GetValue<bool>() ?? false,
            LStrip: node["lstrip"]?.GetValue<bool>() ?? false,
            RStrip: node["rstrip"]?.GetValue<bool>() ?? false);
    }

    private static string?[] WithAddedTokens(string?[] idToToken, IReadOnlyList<AddedToken> addedTokens)
    {
        var size = Math.Max(idToToken.Length, addedTokens.Select(t => t.Id + 1).DefaultIfEmpty(0).Max());
        var result = size == idToToken.Length ? idToToken : [.. idToToken, .. new string?[size - idToToken.Length]];
        foreach (var token in addedTokens)
            result[token.Id] ??= token.Content;
        return result;
    }

    /// <summary>
    /// One token per line, the line number being the id, read as transformers' load_vocab reads it: UTF-8 with
    /// nothing stripped but the line break (\n, \r\n or \r; not U+2028 or U+0085, which can be tokens).
    /// </summary>
    private static string[] ReadVocabLines(string path)
    {
        if (!File.Exists(path))
            throw new EmbedderException($"{path}: vocab file not found");
        var bytes = File.ReadAllBytes(path);
        string text;
        try
        {
            text = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException e)
        {
            var line = 1 + bytes.AsSpan(0, Math.Clamp(e.Index, 0, bytes.Length)).Count((byte)'\n');
            throw EmbedderException.AtLine(path, line, "not valid UTF-8");
        }
        var lines = new List<string>();
        var start = 0;
        for (var i = 0; i < text.Length; i++)
        {
            if (text[i] is not ('\n' or '\r')) continue;
            lines.Add(text[start..i]);
            if (text[i] == '\r' && i + 1 < text.Length && text[i + 1] == '\n') i++;
            start = i + 1;
        }
        if (start < text.Length) lines.Add(text[start..]);
        return [.. lines];
    }

    private static JsonObject ReadJsonObject(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllBytes(path))?.AsObject() ?? throw new JsonException("null");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new EmbedderException($"{path}: not valid JSON ({e.Message})");
        }
    }

    /// <summary>What tokenizer_config.json (and special_tokens_map.json) say about a BERT tokenizer.</summary>
    private sealed record TokenizerConfig(
        BertNormalizerOptions Normalization,
        BertSpecialTokens SpecialTokens,
        IReadOnlyList<string> AdditionalSpecialTokens,
        IReadOnlyList<AddedToken>? AddedTokens,
        int ModelMaxLength,
        bool FromFile = false)
    {
        public static TokenizerConfig Default { get; } = new(new BertNormalizerOptions(), new BertSpecialTokens(), [], null, DefaultModelMaxLength);

        public IEnumerable<string> SpecialTokenNames =>
            new[] { SpecialTokens.Pad, SpecialTokens.Unk, SpecialTokens.Cls, SpecialTokens.Sep, SpecialTokens.Mask }
                .Concat(AdditionalSpecialTokens).OfType<string>();

        public static TokenizerConfig Read(string modelDir)
        {
            var configPath = Path.Combine(modelDir, "tokenizer_config.json");
            var mapPath = Path.Combine(modelDir, "special_tokens_map.json");
            var config = File.Exists(configPath) ? ReadJsonObject(configPath) : [];
            var map = File.Exists(mapPath) ? ReadJsonObject(mapPath) : [];
            var path = File.Exists(configPath) ? configPath : mapPath;

            string? Name(string key) => TokenName(config[key]) ?? TokenName(map[key]);
            var defaults = new BertSpecialTokens();
            var specialTokens = new BertSpecialTokens(
                Unk: Name("unk_token") ?? defaults.Unk,
                Sep: Name("sep_token") ?? defaults.Sep,
                Pad: Name("pad_token") ?? defaults.Pad,
                Cls: Name("cls_token") ?? defaults.Cls,
                Mask: config.ContainsKey("mask_token") || map.ContainsKey("mask_token") ? Name("mask_token") : defaults.Mask);
            var additional = (config["additional_special_tokens"] ?? map["additional_special_tokens"]) is JsonArray extra
                ? extra.Select(TokenName).OfType<string>().ToList()
                : [];

            List<AddedToken>? addedTokens = null;
            if (config["added_tokens_decoder"] is JsonObject decoder)
            {
                addedTokens = [];
                foreach (var (id, node) in decoder)
                {
                    if (node is not JsonObject token || !int.TryParse(id, out var number))
                        throw new EmbedderException($"{configPath}: added_tokens_decoder entry \"{id}\" is not an id with a token");
                    token["id"] = number;
                    addedTokens.Add(ReadAddedToken(token, configPath));
                }
            }

            try
            {
                var normalization = new BertNormalizerOptions(
                    CleanText: true,
                    TokenizeChineseChars: config["tokenize_chinese_chars"]?.GetValue<bool>() ?? true,
                    StripAccents: config["strip_accents"]?.GetValue<bool?>(),
                    LowerCase: config["do_lower_case"]?.GetValue<bool>() ?? true);
                var maxLength = config["model_max_length"]?.GetValue<double>() is { } length
                    ? (int)Math.Clamp(length, 1, int.MaxValue)
                    : DefaultModelMaxLength;
                return new TokenizerConfig(normalization, specialTokens, additional, addedTokens, maxLength, FromFile: File.Exists(configPath));
            }
            catch (Exception e) when (e is InvalidOperationException or FormatException)
            {
                throw new EmbedderException($"{path}: a setting has the wrong type ({e.Message})");
            }
        }

        /// <summary>A special token is written either as its text or as an AddedToken object with "content".</summary>
        private static string? TokenName(JsonNode? node) => node switch
        {
            JsonValue value when value.TryGetValue<string>(out var text) => text,
            JsonObject token => token["content"]?.GetValue<string>(),
            _ => null,
        };
    }
}
