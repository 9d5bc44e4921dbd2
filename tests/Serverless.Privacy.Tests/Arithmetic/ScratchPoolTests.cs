using Serverless.Privacy.Arithmetic;

namespace Serverless.Privacy.Tests.Arithmetic;

public sealed class ScratchPoolTests
{
    [Fact]
    public void A_secret_buffer_is_zeroed_before_the_pool_can_hand_it_to_anyone_else()
    {
        var buffer = ScratchPool.Rent(4096);
        new Random(3).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(buffer.AsSpan()));
        Assert.Contains(buffer, w => w != 0);
        ScratchPool.ReturnSecret(buffer);
        Assert.All(buffer, w => Assert.Equal(0UL, w));
    }
}
