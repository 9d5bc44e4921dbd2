// functions/Serverless.Functions (the .NET 10 isolated-worker app, issue 13) as a Function App on the Flex
// Consumption plan. The app reaches everything with one user-assigned managed identity: host storage, the
// queue triggers and the Durable Functions task hub (AzureWebJobsStorage), the deployment container, Key
// Vault keys and Application Insights. No account key, connection string or secret is stored anywhere.
//
// UNVALIDATED AGAINST AZURE: this template has never been deployed. It compiles and lints without a warning
// under the Bicep CLI from NuGet (bash bicep/check.sh), which checks property names against Azure's resource
// types, but not values, quotas or regional availability. Run `az deployment group what-if` before the first
// real deployment.
// Types, API versions and property names follow the public references:
//   Flex Consumption plan and site (serverfarms sku FC1, sites.functionAppConfig):
//     https://learn.microsoft.com/azure/azure-functions/functions-infrastructure-as-code?pivots=flex-consumption-plan
//     https://learn.microsoft.com/azure/templates/microsoft.web/2024-04-01/sites
//     https://github.com/Azure-Samples/azure-functions-flex-consumption-samples (IaC/bicep)
//   identity-based AzureWebJobsStorage (accountName / credential / clientId):
//     https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity
//     https://learn.microsoft.com/azure/azure-functions/durable/durable-functions-configure-managed-identity
//   Key Vault keys: https://learn.microsoft.com/azure/templates/microsoft.keyvault/2023-07-01/vaults/keys, deployed
//     through ARM's Keys - Create If Not Exist (https://learn.microsoft.com/rest/api/keyvault/keyvault/keys/create-if-not-exist)
//   role definition ids: https://learn.microsoft.com/azure/role-based-access-control/built-in-roles/storage,
//     .../built-in-roles/security, .../built-in-roles/monitor
//
// Deploy the infrastructure:
//   az deployment group create -g <rg> -f bicep/main.bicep -p namePrefix=serverless
// Deploy the build output (the zip root holds host.json, functions.metadata, worker.config.json, .azurefunctions/):
//   dotnet publish functions/Serverless.Functions -c Release -o out && (cd out && zip -qr ../app.zip .)
//   az functionapp deployment source config-zip -g <rg> -n <functionAppName output> --src app.zip
// (`func azure functionapp publish <app>` from functions/Serverless.Functions does the same where Core Tools exist.)

targetScope = 'resourceGroup'

@description('Azure region; defaults to the resource group\'s. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = resourceGroup().location

@description('Prefix of every resource name: lower-case letters and digits (storage account names allow nothing else).')
@minLength(3)
@maxLength(11)
param namePrefix string = 'serverless'

@description('Memory of each instance in MB. The CKKS evaluator and ONNX Runtime want 2048 or more.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of instances the platform may scale out to (Flex Consumption accepts 40 to 1000).')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

var suffix = uniqueString(resourceGroup().id, namePrefix)
var tags = {
  application: namePrefix
}
// Flex Consumption reads the package from this container; the platform writes it there on each deployment.
var deploymentContainerName = 'app-package'

// Built-in role definition ids, fixed across tenants (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  // Host storage (leases, timer status, keys) and the deployment container; the samples above use Owner for both.
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Queue triggers (partner-batches, fraud transactions), their -poison queues, and the task hub's control/work-item queues.
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // Durable Functions' Azure Storage provider keeps instances and history in tables.
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // wrapKey/unwrapKey/sign/verify/read/update only: the app cannot create, rotate or delete keys.
  keyVaultCryptoUser: '12338af0-0e69-4776-bea7-57ae8d297424'
  // Entra ID ingestion into Application Insights (local auth is disabled below).
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  // Key Vault Secrets User (4633458b-17de-408a-b874-0445c86b69e6) is not assigned: no app setting is a Key Vault reference.
}

// The keys the security layer uses (security/Serverless.Security, SecurityOptions and TokenOptions defaults).
// Declared here because the app's identity holds Key Vault Crypto User, which cannot create keys; at start-up
// the app finds them and skips its own create. ARM creates a key only if it does not exist and never adds a
// version on redeployment, so this is idempotent. Sizes: RSA 3072 and P-256 give 128-bit security
// (NIST SP 800-57 Part 1 Rev. 5, table 2); they match what AzureKeyVaultClient creates.
var wrappingKeys = [
  'checkpoints-kek' // wraps the data keys of envelope-encrypted checkpoints (RSA-OAEP-256)
  'pseudonymization-kek' // wraps the pseudonymization HMAC key
]
var signingKeys = [
  'token-signing' // ES256 access tokens
  'audit-signing' // ES256 audit checkpoints
]

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${namePrefix}-id-${suffix}'
  location: location
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: '${namePrefix}-logs-${suffix}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 90
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-ai-${suffix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id // workspace-based
    DisableLocalAuth: true // only the app's identity may send telemetry
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take(toLower('${namePrefix}${suffix}'), 24)
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_ZRS' // the task hub and the product's blobs survive a zone failure
  }
  properties: {
    allowSharedKeyAccess: false // Entra ID only: no account key exists to leak
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true // a second layer of encryption at rest
      services: {
        blob: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}
// The product's containers (checkpoints, federations, partner-*, audit, ...) and queues are created by the app on
// first use, which the data roles below allow.

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('${namePrefix}-kv-${suffix}', 24)
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'premium' // HSM-protected keys
    }
    enableRbacAuthorization: true // Azure RBAC, no access policies
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true // a deleted KEK must stay recoverable, or every checkpoint it wrapped is lost
    publicNetworkAccess: 'Enabled'
  }
}

resource wrappingKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = [for name in wrappingKeys: {
  parent: keyVault
  name: name
  properties: {
    kty: 'RSA-HSM'
    keySize: 3072
    keyOps: [
      'wrapKey'
      'unwrapKey'
    ]
  }
}]

resource signingKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' = [for name in signingKeys: {
  parent: keyVault
  name: name
  properties: {
    kty: 'EC-HSM'
    curveName: 'P-256'
    keyOps: [
      'sign'
      'verify'
    ]
  }
}]

// Every key operation goes to Log Analytics: the vault's own audit trail beside the app's signed audit log.
resource keyVaultAudit 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  scope: keyVault
  name: 'to-log-analytics'
  properties: {
    workspaceId: logs.id
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

// --- role assignments for the app's identity ---------------------------------------------------------------
// Made before the site exists (the identity is user-assigned), so the first start already has them; Azure RBAC
// can still take a few minutes to propagate.

var storageRoleIds = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in storageRoleIds: {
  scope: storage
  name: guid(storage.id, identity.id, role)
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
  }
}]

resource keyVaultCryptoUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: keyVault
  name: guid(keyVault.id, identity.id, roles.keyVaultCryptoUser)
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultCryptoUser)
  }
}

resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: insights
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

// --- the plan and the app -----------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${namePrefix}-plan-${suffix}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true // Linux, the only OS Flex Consumption runs
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: '${namePrefix}-func-${suffix}'
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Federation agents on mutual TLS: the front end asks every caller for a client certificate (Optional, since
    // operators, auditors and partners call with a bearer token alone) and forwards it as X-ARR-ClientCert; the
    // app validates it against the federation's CA (SERVERLESS_FEDERATION_CLIENT_CERTIFICATE below).
    clientCertEnabled: true
    clientCertMode: 'Optional'
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identity.id
          }
        }
      }
      runtime: {
        name: 'dotnet-isolated'
        version: '10.0'
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      // Flex Consumption takes the runtime from functionAppConfig and rejects FUNCTIONS_WORKER_RUNTIME,
      // FUNCTIONS_EXTENSION_VERSION and WEBSITE_RUN_FROM_PACKAGE, so none of them is set.
      appSettings: [
        // Identity-based host storage: the host, the queue triggers and Durable Functions' Azure Storage task hub.
        // A user-assigned identity needs credential and clientId (Durable Functions takes clientId, not a resource id).
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identity.properties.clientId
        }
        {
          name: 'SERVERLESS_FEDERATION_CLIENT_CERTIFICATE'
          value: 'required'
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: insights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING' // the host sends telemetry with the identity's token
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        {
          name: 'AZURE_CLIENT_ID' // DefaultAzureCredential in the worker picks the user-assigned identity
          value: identity.properties.clientId
        }
        {
          name: 'SERVERLESS_KEY_VAULT_URI' // SecurityOptions.AzureKeyVaultUri: keys in Key Vault, not the local keyring
          value: keyVault.properties.vaultUri
        }
      ]
    }
  }
  dependsOn: [
    deploymentContainer
    storageRoles
    keyVaultCryptoUser
    telemetryPublisher
    wrappingKey
    signingKey
  ]
}

output functionAppName string = app.name
output defaultHostName string = app.properties.defaultHostName
output keyVaultUri string = keyVault.properties.vaultUri
