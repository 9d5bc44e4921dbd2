using System.Text.Json;
using Serverless.Privacy.SecureAggregation;

namespace Serverless.Privacy.Tests.SecureAggregation;

public sealed class MessageSerializationTests
{
    private static T Json<T>(T value) => JsonSerializer.Deserialize<T>(JsonSerializer.Serialize(value))!;

    [Fact]
    public void A_round_whose_every_message_crosses_JSON_still_sums_exactly()
    {
        var h = SecAggHarness.Create(n: 6, threshold: 3, length: 40);
        var p = Json(h.Parameters);
        var server = new SecAggServer(p);
        var clients = p.ClientIds.ToDictionary(i => i, i => new SecAggClient(Json(p), i));
        foreach (var c in clients.Values) Assert.True(server.ReceiveAdvertiseKeys(Json(c.AdvertiseKeys())).Accepted);
        foreach (var (id, k) in server.CloseAdvertiseKeys()) Assert.True(server.ReceiveShareKeys(Json(clients[id].ShareKeys(Json(k)))).Accepted);
        foreach (var (id, f) in server.CloseShareKeys())
            if (id != 2) Assert.True(server.ReceiveMaskedInput(Json(clients[id].MaskInput(Json(f), h.Inputs[id]))).Accepted);
        var request = Json(server.CloseMaskedInput());
        foreach (var (id, c) in clients)
            if (id != 2) Assert.True(server.ReceiveUnmaskResponse(Json(c.Unmask(request))).Accepted);
        var result = Json(server.Finish());
        Assert.Equal(h.PlainSum([1, 3, 4, 5, 6]), result.Sum);
        foreach (var c in clients.Values) c.Dispose();
    }
}
