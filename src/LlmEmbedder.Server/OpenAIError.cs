using System.Text.Json;

namespace LlmEmbedder.Server;

/// <summary>
/// An error answered in the OpenAI API's shape, <c>{"error": {"message", "type", "param", "code"}}</c>, so OpenAI
/// clients raise it with its message instead of failing to parse the body.
/// </summary>
public sealed class OpenAIError(int status, string message, string type = OpenAIError.InvalidRequest, string? param = null, string? code = null)
    : Exception(message)
{
    public const string InvalidRequest = "invalid_request_error";

    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    public string? Code { get; } = code;

    /// <summary>Seconds the client should wait before retrying (429, 503), or null.</summary>
    public int? RetryAfterSeconds { get; init; }

    public static OpenAIError BadRequest(string message, string? param = null, string? code = null) => new(400, message, InvalidRequest, param, code);

    public byte[] ToJson()
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject("error");
            json.WriteString("message", Message);
            json.WriteString("type", Type);
            json.WriteString("param", Param);
            json.WriteString("code", Code);
            json.WriteEndObject();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }
}
