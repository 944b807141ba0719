using System.Text.Json;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Server;

/// <summary>The OpenAI embeddings API's response encodings.</summary>
public enum EncodingFormat
{
    Float,

    /// <summary>Each vector's little-endian float32 bytes in base64 (what the OpenAI SDKs ask for by default).</summary>
    Base64,
}

/// <summary>
/// A POST /v1/embeddings body, checked: <c>input</c> (a string or an array of strings), <c>model</c>,
/// <c>encoding_format</c>, <c>dimensions</c> and <c>user</c> as the OpenAI API defines them, and our additions:
/// <c>input_type</c> (query, or document/passage/key: which side of retrieval), <c>task</c> (which instruction) and
/// <c>truncate</c> (cut over-long texts instead of refusing them, as text-embeddings-inference's field). Any other
/// field is refused, as the OpenAI API refuses it, so a misspelt field does not pass silently.
/// </summary>
public sealed record EmbeddingsRequest(
    IReadOnlyList<string> Input, string? Model, EncodingFormat Format, int? Dimensions, EmbeddingRole? Role, string? Task, bool? Truncate)
{
    private static readonly string[] Fields = ["input", "model", "encoding_format", "dimensions", "user", "input_type", "task", "truncate"];

    /// <exception cref="OpenAIError">What is wrong, with the field it concerns.</exception>
    public static EmbeddingsRequest Parse(JsonElement body, int maxInputs)
    {
        if (body.ValueKind != JsonValueKind.Object) throw OpenAIError.BadRequest("the request body must be a JSON object");
        foreach (var property in body.EnumerateObject())
            if (!Fields.Contains(property.Name))
                throw OpenAIError.BadRequest($"unrecognized request argument supplied: {property.Name}", property.Name);

        if (!body.TryGetProperty("input", out var inputElement) || inputElement.ValueKind == JsonValueKind.Null)
            throw OpenAIError.BadRequest("you must provide an input: a string or an array of strings", "input");
        var input = ParseInput(inputElement, maxInputs);

        string? model = OptionalString(body, "model");
        OptionalString(body, "user");
        var format = OptionalString(body, "encoding_format") switch
        {
            null or "float" => EncodingFormat.Float,
            "base64" => EncodingFormat.Base64,
            var other => throw OpenAIError.BadRequest($"encoding_format \"{other}\": expected float or base64", "encoding_format"),
        };
        int? dimensions = null;
        if (body.TryGetProperty("dimensions", out var dimensionsElement) && dimensionsElement.ValueKind != JsonValueKind.Null)
        {
            if (dimensionsElement.ValueKind != JsonValueKind.Number || !dimensionsElement.TryGetInt32(out var value))
                throw OpenAIError.BadRequest("dimensions must be an integer", "dimensions");
            dimensions = value;
        }
        EmbeddingRole? role = null;
        if (OptionalString(body, "input_type") is { } inputType)
        {
            try
            {
                role = TextEmbeddingGenerator.ParseInputType(inputType);
            }
            catch (EmbedderException error)
            {
                throw OpenAIError.BadRequest(error.Message, "input_type");
            }
        }
        bool? truncate = null;
        if (body.TryGetProperty("truncate", out var truncateElement) && truncateElement.ValueKind != JsonValueKind.Null)
            truncate = truncateElement.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw OpenAIError.BadRequest("truncate must be true or false", "truncate"),
            };
        return new EmbeddingsRequest(input, model, format, dimensions, role, OptionalString(body, "task"), truncate);
    }

    private static List<string> ParseInput(JsonElement input, int maxInputs)
    {
        var texts = new List<string>();
        switch (input.ValueKind)
        {
            case JsonValueKind.String:
                texts.Add(input.GetString()!);
                break;
            case JsonValueKind.Array:
                foreach (var item in input.EnumerateArray())
                {
                    if (item.ValueKind == JsonValueKind.Number || item.ValueKind == JsonValueKind.Array)
                        throw OpenAIError.BadRequest("input as token ids is not supported (the tokenizer is the model's own): send text", "input");
                    if (item.ValueKind != JsonValueKind.String)
                        throw OpenAIError.BadRequest($"input[{texts.Count}] must be a string, got {Describe(item.ValueKind)}", "input");
                    texts.Add(item.GetString()!);
                }
                if (texts.Count == 0) throw OpenAIError.BadRequest("input must not be an empty array", "input");
                break;
            default:
                throw OpenAIError.BadRequest($"input must be a string or an array of strings, got {Describe(input.ValueKind)}", "input");
        }
        if (texts.Count > maxInputs)
            throw new OpenAIError(413, $"input has {texts.Count} texts, more than this server's limit of {maxInputs} per request", OpenAIError.InvalidRequest, "input", "too_many_inputs");
        for (int i = 0; i < texts.Count; i++)
            if (texts[i].Length == 0)
                throw OpenAIError.BadRequest(texts.Count == 1 ? "input must not be an empty string" : $"input[{i}] must not be an empty string", "input");
        return texts;
    }

    private static string? OptionalString(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var element) || element.ValueKind == JsonValueKind.Null) return null;
        if (element.ValueKind != JsonValueKind.String)
            throw OpenAIError.BadRequest($"{name} must be a string, got {Describe(element.ValueKind)}", name);
        return element.GetString();
    }

    private static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        _ => "null",
    };
}
