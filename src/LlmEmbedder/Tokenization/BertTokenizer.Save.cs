using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace LlmEmbedder.Tokenization;

public sealed partial class BertTokenizer
{
    /// <summary>
    /// Writes vocab.txt, tokenizer_config.json, special_tokens_map.json and tokenizer.json (the files of a
    /// transformers BertTokenizerFast save), each atomically. The folder is created if needed.
    /// </summary>
    public void Save(string directory)
    {
        Directory.CreateDirectory(directory);
        FileUtil.WriteAllTextAtomic(Path.Combine(directory, "vocab.txt"), VocabText());
        FileUtil.WriteAllTextAtomic(Path.Combine(directory, "tokenizer_config.json"), TokenizerConfigJson().ToJsonString(JsonFormatting.TwoSpaces));
        FileUtil.WriteAllTextAtomic(Path.Combine(directory, "special_tokens_map.json"), SpecialTokensMapJson().ToJsonString(JsonFormatting.TwoSpaces));
        FileUtil.WriteAllTextAtomic(Path.Combine(directory, "tokenizer.json"), TokenizerJson().ToJsonString(JsonFormatting.TwoSpaces));
    }

    private string VocabText()
    {
        var text = new StringBuilder(idToToken.Length * 8);
        for (var id = 0; id < idToToken.Length; id++)
        {
            // An id no token maps to (a tokenizer.json made from a vocab.txt with duplicates) still needs its line so
            // the ids after it keep their numbers; brackets around it make it a string no input can produce.
            text.Append(idToToken[id] ?? $"[unused-gap-{id}]").Append('\n');
        }
        return text.ToString();
    }

    private JsonObject SpecialTokensMapJson()
    {
        var map = new JsonObject
        {
            ["cls_token"] = SpecialTokens.Cls,
        };
        if (SpecialTokens.Mask is { } mask) map["mask_token"] = mask;
        map["pad_token"] = SpecialTokens.Pad;
        map["sep_token"] = SpecialTokens.Sep;
        map["unk_token"] = SpecialTokens.Unk;
        return map;
    }

    private JsonObject TokenizerConfigJson()
    {
        var decoder = new JsonObject();
        foreach (var token in AddedTokens.OrderBy(t => t.Id))
            decoder[token.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = AddedTokenJson(token, withId: false);
        var config = new JsonObject
        {
            ["added_tokens_decoder"] = decoder,
            ["clean_up_tokenization_spaces"] = true,
            ["cls_token"] = SpecialTokens.Cls,
            ["do_basic_tokenize"] = true,
            ["do_lower_case"] = Normalization.LowerCase,
        };
        if (SpecialTokens.Mask is { } mask) config["mask_token"] = mask;
        config["model_max_length"] = ModelMaxLength;
        config["never_split"] = null;
        config["pad_token"] = SpecialTokens.Pad;
        config["sep_token"] = SpecialTokens.Sep;
        config["strip_accents"] = Normalization.StripAccents;
        config["tokenize_chinese_chars"] = Normalization.TokenizeChineseChars;
        config["tokenizer_class"] = "BertTokenizer";
        if (TruncationSide == TruncationSide.Left) config["truncation_side"] = "left";
        config["unk_token"] = SpecialTokens.Unk;
        return config;
    }

    private JsonObject TokenizerJson()
    {
        var vocab = new JsonObject();
        foreach (var (token, id) in wordPiece.Vocabulary.OrderBy(entry => entry.Value))
            vocab[token] = id;
        JsonObject Special(string token, int typeId) => new() { ["SpecialToken"] = new JsonObject { ["id"] = token, ["type_id"] = typeId } };
        JsonObject Sequence(string id, int typeId) => new() { ["Sequence"] = new JsonObject { ["id"] = id, ["type_id"] = typeId } };
        JsonObject SpecialIds(string token, int id) => new() { ["id"] = token, ["ids"] = new JsonArray(id), ["tokens"] = new JsonArray(token) };
        return new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray([.. AddedTokens.OrderBy(t => t.Id).Select(t => (JsonNode)AddedTokenJson(t, withId: true))]),
            ["normalizer"] = new JsonObject
            {
                ["type"] = "BertNormalizer",
                ["clean_text"] = Normalization.CleanText,
                ["handle_chinese_chars"] = Normalization.TokenizeChineseChars,
                ["strip_accents"] = Normalization.StripAccents,
                ["lowercase"] = Normalization.LowerCase,
            },
            ["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" },
            ["post_processor"] = new JsonObject
            {
                ["type"] = "TemplateProcessing",
                ["single"] = new JsonArray(Special(SpecialTokens.Cls, 0), Sequence("A", 0), Special(SpecialTokens.Sep, 0)),
                ["pair"] = new JsonArray(Special(SpecialTokens.Cls, 0), Sequence("A", 0), Special(SpecialTokens.Sep, 0), Sequence("B", 1), Special(SpecialTokens.Sep, 1)),
                ["special_tokens"] = new JsonObject
                {
                    [SpecialTokens.Cls] = SpecialIds(SpecialTokens.Cls, ClsId),
                    [SpecialTokens.Sep] = SpecialIds(SpecialTokens.Sep, SepId),
                },
            },
            ["decoder"] = new JsonObject { ["type"] = "WordPiece", ["prefix"] = ContinuingSubwordPrefix, ["cleanup"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "WordPiece",
                ["unk_token"] = SpecialTokens.Unk,
                ["continuing_subword_prefix"] = ContinuingSubwordPrefix,
                ["max_input_chars_per_word"] = MaxInputCharsPerWord,
                ["vocab"] = vocab,
            },
        };
    }

    private static JsonObject AddedTokenJson(AddedToken token, bool withId)
    {
        var json = new JsonObject();
        if (withId) json["id"] = token.Id;
        json["content"] = token.Content;
        json["single_word"] = false;
        json["lstrip"] = token.LStrip;
        json["rstrip"] = token.RStrip;
        json["normalized"] = token.Normalized;
        json["special"] = token.Special;
        return json;
    }
}
