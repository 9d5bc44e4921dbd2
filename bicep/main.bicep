// Azure deployment sketch for the serverless platform:
//   Log Analytics -> Container Apps environment -> the function host as a container app, scaled by KEDA
//   on queue length and HTTP concurrency; a storage account (blob + queue) reached with the app's managed
//   identity; Key Vault (RBAC) for key-encryption keys; PostgreSQL flexible server for the durable engine.
// Deploy: az deployment group create -g <rg> -f bicep/main.bicep -p containerImage=<registry>/serverless:<tag> postgresAdminPassword=<secret>

targetScope = 'resourceGroup'

@description('Short name used to derive resource names (lower-case letters and digits).')
@minLength(3)
@maxLength(11)
param appName string = 'serverless'

@description('Azure region; defaults to the resource group\'s.')
param location string = resourceGroup().location

@description('Container image of functions/Serverless.Functions.')
param containerImage string

@description('Queues whose length scales the app (KEDA azure-queue scaler).')
param scaledQueues array = [
  'sample-jobs'
]

@description('Messages per replica before KEDA adds one.')
@minValue(1)
param queueLengthPerReplica int = 20

@description('Concurrent HTTP requests per replica before KEDA adds one.')
@minValue(1)
param httpConcurrencyPerReplica int = 50

@minValue(0)
@maxValue(30)
param minReplicas int = 0

@minValue(1)
@maxValue(300)
param maxReplicas int = 10

@description('PostgreSQL administrator login for the durable engine\'s database.')
param postgresAdminLogin string = 'durableadmin'

@description('PostgreSQL administrator password.')
@secure()
param postgresAdminPassword string

@description('Object id of the operator group granted Key Vault Crypto Officer (key rotation).')
param keyVaultAdminObjectId string = ''

param tags object = {
  application: appName
}

var suffix = uniqueString(resourceGroup().id, appName)
var storageAccountName = take('${appName}${suffix}', 24)
var keyVaultName = take('${appName}-kv-${suffix}', 24)
var postgresName = '${appName}-pg-${suffix}'
var logAnalyticsName = '${appName}-logs-${suffix}'
var environmentName = '${appName}-env-${suffix}'
var identityName = '${appName}-id-${suffix}'

// Built-in role definition ids (documented, fixed across tenants).
var storageBlobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var keyVaultCryptoUser = '12338af0-0e69-4776-bea7-57ae8d297424'
var keyVaultCryptoOfficer = '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

resource logs 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 90
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-01-01' = {
  name: storageAccountName
  location: location
  tags: tags
  sku: {
    name: 'Standard_ZRS'
  }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // the app uses its managed identity (host.json storage.*.authentication = token)
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-01-01' = {
  parent: storage
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: 30
    }
  }
}

resource checkpoints 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-01-01' = {
  parent: blobService
  name: 'serverless'
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-01-01' = {
  parent: storage
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-01-01' = [for queue in scaledQueues: {
  parent: queueService
  name: queue
}]

resource poisonQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-01-01' = [for queue in scaledQueues: {
  parent: queueService
  name: '${queue}-poison'
}]

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'premium' // HSM-backed keys for the key-encryption keys
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource postgres 'Microsoft.DBforPostgreSQL/flexibleServers@2022-12-01' = {
  name: postgresName
  location: location
  tags: tags
  sku: {
    name: 'Standard_B2s'
    tier: 'Burstable'
  }
  properties: {
    version: '15'
    administratorLogin: postgresAdminLogin
    administratorLoginPassword: postgresAdminPassword
    storage: {
      storageSizeGB: 32
    }
    backup: {
      backupRetentionDays: 14
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
  }
}

resource durableDatabase 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2022-12-01' = {
  parent: postgres
  name: 'durable'
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

resource postgresAllowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2022-12-01' = {
  parent: postgres
  name: 'AllowAzureServices'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource postgresRequireTls 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2022-12-01' = {
  parent: postgres
  name: 'require_secure_transport'
  properties: {
    value: 'on'
    source: 'user-override'
  }
}

resource postgresConnection 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: keyVault
  name: 'durable-postgres'
  properties: {
    value: 'Host=${postgres.properties.fullyQualifiedDomainName};Database=durable;Username=${postgresAdminLogin};Password=${postgresAdminPassword};SSL Mode=VerifyFull'
  }
}

// --- role assignments for the app's identity (least privilege) --------------------------------

resource blobRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageBlobDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource queueRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, identity.id, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource cryptoUserRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, identity.id, keyVaultCryptoUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCryptoUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource secretsUserRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, identity.id, keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource cryptoOfficerRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(keyVaultAdminObjectId)) {
  name: guid(keyVault.id, keyVaultAdminObjectId, keyVaultCryptoOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCryptoOfficer)
    principalId: keyVaultAdminObjectId
    principalType: 'Group'
  }
}

// --- the app ------------------------------------------------------------------------------------

resource environment 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: environmentName
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: logs.properties.customerId
        sharedKey: logs.listKeys().primarySharedKey
      }
    }
    zoneRedundant: false
  }
}

var queueScaleRules = [for queue in scaledQueues: {
  name: 'queue-${queue}'
  custom: {
    type: 'azure-queue'
    identity: identity.id
    metadata: {
      accountName: storage.name
      queueName: queue
      queueLength: string(queueLengthPerReplica)
    }
  }
}]

var httpScaleRule = {
  name: 'http'
  http: {
    metadata: {
      concurrentRequests: string(httpConcurrencyPerReplica)
    }
  }
}

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: appName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: {
    managedEnvironmentId: environment.id
    configuration: {
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: 8080
        transport: 'http'
        allowInsecure: false
      }
      secrets: [
        {
          name: 'durable-postgres'
          keyVaultUrl: postgresConnection.properties.secretUri
          identity: identity.id
        }
      ]
    }
    template: {
      containers: [
        {
          name: 'functions'
          image: containerImage
          args: [
            '--urls'
            'http://0.0.0.0:8080'
            '--data-dir'
            '/tmp/serverless-data'
          ]
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
          env: [
            {
              name: 'AZURE_CLIENT_ID'
              value: identity.properties.clientId
            }
            // host.json keys overridden the Azure Functions way (AzureFunctionsJobHost__<path>): cloud storage via the managed identity.
            {
              name: 'AzureFunctionsJobHost__storage__blob__backend'
              value: 'azure'
            }
            {
              name: 'AzureFunctionsJobHost__storage__blob__endpoint'
              value: storage.properties.primaryEndpoints.blob
            }
            {
              name: 'AzureFunctionsJobHost__storage__blob__authentication'
              value: 'token'
            }
            {
              name: 'AzureFunctionsJobHost__storage__queue__backend'
              value: 'azure'
            }
            {
              name: 'AzureFunctionsJobHost__storage__queue__endpoint'
              value: storage.properties.primaryEndpoints.queue
            }
            {
              name: 'AzureFunctionsJobHost__storage__queue__authentication'
              value: 'token'
            }
            {
              name: 'SERVERLESS_KEY_VAULT_URI'
              value: keyVault.properties.vaultUri
            }
            {
              name: 'SERVERLESS_DURABLE_POSTGRES'
              secretRef: 'durable-postgres'
            }
          ]
          probes: [
            {
              type: 'Liveness'
              httpGet: {
                path: '/api/health'
                port: 8080
              }
              periodSeconds: 30
            }
            {
              type: 'Readiness'
              httpGet: {
                path: '/api/health'
                port: 8080
              }
              periodSeconds: 10
            }
          ]
        }
      ]
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: concat(queueScaleRules, [
          httpScaleRule
        ])
      }
    }
  }
  dependsOn: [
    blobRole
    queueRole
    cryptoUserRole
    secretsUserRole
  ]
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: keyVault
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

output appUrl string = 'https://${app.properties.configuration.ingress.fqdn}'
output storageAccount string = storage.name
output keyVaultUri string = keyVault.properties.vaultUri
output postgresHost string = postgres.properties.fullyQualifiedDomainName
output identityClientId string = identity.properties.clientId
