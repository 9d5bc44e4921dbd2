namespace Serverless.Privacy.Serialization;

/// <summary>
/// Serialized homomorphic-encryption data (CKKS or Paillier) is malformed, truncated, made under
/// other parameters, or out of range. Loaders throw only this type for bad input.
/// (System.IO.InvalidDataException is sealed, so this derives from FormatException.)
/// </summary>
public sealed class HeFormatException : FormatException
{
    public HeFormatException(string message)
        : base(message)
    {
    }

    public HeFormatException(string message, Exception inner)
        : base(message, inner)
    {
    }
}
