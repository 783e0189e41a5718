//! Elastic's per-service entity rules, as data: for each service, which fields of a record
//! name related entities and, per event name, which name the call's targets (read by
//! `entity.rs`). Learnt from the actor/target mapping script of Elastic's CloudTrail
//! integration; paths are trailship's own notation (`a.b[]` walks each item of the list `b`).

/// How values are taken from a path (`a.b[]` walks each item of the list `b`).
pub enum Pick {
    /// Every value the path reaches, each on its own.
    Each(&'static str),
    /// For each item the path reaches, these fields of it in order, stopping at the first that
    /// is missing or already known (Elastic adds such groups that way).
    Chain(&'static str, &'static [&'static str]),
}

use Pick::{Chain, Each};

/// Targets for the calls named (a name starting with `~` matches names containing the rest:
/// Lambda versions its event names).
pub struct Rule(pub &'static [&'static str], pub &'static [Pick]);

pub struct Service {
    pub source: &'static str,
    pub related: &'static [Pick],
    pub targets: &'static [Rule],
}

pub const ACCOUNT: Pick = Each("recipientAccountId");
pub const RESOURCES: Pick = Each("resources[].ARN");

pub const SERVICES: &[Service] = &[
    Service {
        source: "cloudformation.amazonaws.com",
        related: &[],
        targets: &[
            Rule(&["CreateStackSet"], &[Each("responseElements.stackSetId")]),
            Rule(&["CreateStack"], &[Each("responseElements.stackId")]),
        ],
    },
    Service {
        source: "cloudtrail.amazonaws.com",
        related: &[
            Each("requestParameters.name"),
            Each("requestParameters.s3BucketName"),
            Each("responseElements.cloudWatchLogsLogGroupArn"),
            Each("responseElements.cloudWatchLogsRoleArn"),
            Each("responseElements.kmsKeyId"),
            Each("responseElements.snsTopicARN"),
            Each("responseElements.trailARN"),
            Each("responseElements.name"),
        ],
        targets: &[
            Rule(
                &["DeleteTrail", "StopLogging"],
                &[Each("requestParameters.name")],
            ),
            Rule(&["DescribeTrails"], &[ACCOUNT]),
        ],
    },
    Service {
        source: "config.amazonaws.com",
        related: &[Each("requestParameters.configurationRecorderName")],
        targets: &[Rule(
            &["StopConfigurationRecorder", "StartConfigurationRecorder"],
            &[Each("requestParameters.configurationRecorderName")],
        )],
    },
    Service {
        source: "ec2-instance-connect.amazonaws.com",
        related: &[],
        targets: &[Rule(
            &["SendSSHPublicKey", "SendSerialConsoleSSHPublicKey"],
            &[Each("requestParameters.instanceId")],
        )],
    },
    Service {
        source: "ec2.amazonaws.com",
        related: &[
            Each("requestParameters.groupId"),
            Each("requestParameters.groupName"),
            Each("requestParameters.roleName"),
            Each("requestParameters.subnetId"),
            Each("requestParameters.volumeId"),
            Each("requestParameters.networkInterfaceId"),
            Each("requestParameters.vpcId"),
            Each("requestParameters.snapshotId"),
            Each("responseElements.groupId"),
            Each("responseElements.reservationId"),
            Each("responseElements.vpc.vpcId"),
            Each("responseElements.vpc.dhcpOptionsId"),
            Each("responseElements.snapshotId"),
            Each("responseElements.volumeId"),
            Chain(
                "responseElements.securityGroupRuleSet.items[]",
                &[
                    "groupId",
                    "referencedGroupInfo.groupId",
                    "securityGroupRuleId",
                ],
            ),
            Each("responseElements.groupSet.items[].groupId"),
            Each("requestParameters.groupSet.items[].groupId"),
            Each("requestParameters.instancesSet.items[].instanceId"),
            Chain(
                "responseElements.instancesSet.items[]",
                &[
                    "subnetId",
                    "vpcId",
                    "instanceId",
                    "imageId",
                    "iamInstanceProfile.arn",
                ],
            ),
            Chain(
                "responseElements.instancesSet.items[].networkInterfaceSet.items[]",
                &["networkInterfaceId", "vpcId", "subnetId"],
            ),
            Each(
                "responseElements.instancesSet.items[].networkInterfaceSet.items[].groupSet.items[].groupId",
            ),
            Chain(
                "requestParameters.revokedSecurityGroupRuleSet.items[]",
                &["securityGroupRuleId", "groupId"],
            ),
        ],
        targets: &[
            Rule(
                &[
                    "AuthorizeSecurityGroupIngress",
                    "AuthorizeSecurityGroupEgress",
                ],
                &[
                    Each("requestParameters.groupId"),
                    Each("responseElements.securityGroupRuleSet.items[].securityGroupRuleId"),
                ],
            ),
            Rule(
                &["CreateTrafficMirrorFilter"],
                &[Each(
                    "responseElements.CreateTrafficMirrorFilterResponse.trafficMirrorFilter.trafficMirrorFilterId",
                )],
            ),
            Rule(
                &["CreateTrafficMirrorFilterRule"],
                &[Each(
                    "responseElements.CreateTrafficMirrorFilterRuleResponse.trafficMirrorFilterRule.trafficMirrorFilterRuleId",
                )],
            ),
            Rule(
                &["CreateTrafficMirrorSession"],
                &[Each(
                    "responseElements.CreateTrafficMirrorSessionResponse.trafficMirrorSession.trafficMirrorSessionId",
                )],
            ),
            Rule(
                &["CreateTrafficMirrorTarget"],
                &[Each(
                    "responseElements.CreateTrafficMirrorTargetResponse.trafficMirrorTarget.trafficMirrorTargetId",
                )],
            ),
            Rule(
                &["DeleteFlowLogs"],
                &[Each(
                    "requestParameters.DeleteFlowLogsRequest.FlowLogId.content",
                )],
            ),
            Rule(
                &["DeleteNetworkAcl"],
                &[Each("requestParameters.networkAclId")],
            ),
            Rule(
                &["DeleteNetworkAclEntry"],
                &[
                    Each("requestParameters.networkAclId"),
                    Each("requestParameters.ruleNumber"),
                ],
            ),
            Rule(
                &["GetPasswordData"],
                &[Each("requestParameters.instanceId")],
            ),
            Rule(
                &["ModifyImageAttribute"],
                &[Each("requestParameters.imageId")],
            ),
            Rule(
                &["ModifySnapshotAttribute"],
                &[Each("requestParameters.snapshotId")],
            ),
            Rule(
                &[
                    "DescribeSecurityGroups",
                    "DescribeNetworkInterfaces",
                    "DescribeRegions",
                    "DescribeVpcs",
                    "DescribeNetworkAcls",
                    "DescribeVolumes",
                ],
                &[ACCOUNT],
            ),
        ],
    },
    Service {
        source: "elasticfilesystem.amazonaws.com",
        related: &[],
        targets: &[
            Rule(
                &["DeleteFileSystem"],
                &[Each("requestParameters.fileSystemId")],
            ),
            Rule(
                &["DeleteMountTarget"],
                &[Each("requestParameters.mountTargetId")],
            ),
        ],
    },
    Service {
        source: "events.amazonaws.com",
        related: &[],
        targets: &[Rule(&["DeleteRule"], &[Each("requestParameters.name")])],
    },
    Service {
        source: "guardduty.amazonaws.com",
        related: &[
            Each("requestParameters.detectorId"),
            Each("responseElements.detectorId"),
        ],
        targets: &[
            Rule(&["CreateDetector"], &[Each("responseElements.detectorId")]),
            Rule(&["DeleteDetector"], &[Each("requestParameters.detectorId")]),
        ],
    },
    Service {
        source: "iam.amazonaws.com",
        related: &[
            Each("requestParameters.userName"),
            Each("requestParameters.serialNumber"),
            Each("requestParameters.accessKeyId"),
            Each("requestParameters.policyArn"),
            Each("requestParameters.roleName"),
            Each("requestParameters.policyName"),
            Each("responseElements.accessKey.userName"),
            Each("responseElements.accessKey.accessKeyId"),
            Each("responseElements.user.arn"),
            Each("responseElements.user.userId"),
            Each("responseElements.user.userName"),
            Each("responseElements.userId"),
            Each("responseElements.role.arn"),
            Each("responseElements.serialNumber"),
        ],
        targets: &[
            Rule(
                &["AttachGroupPolicy"],
                &[Each("requestParameters.groupName")],
            ),
            Rule(
                &[
                    "AttachRolePolicy",
                    "ListAttachedRolePolicies",
                    "UpdateAssumeRolePolicy",
                ],
                &[Each("requestParameters.roleName")],
            ),
            Rule(
                &["AttachUserPolicy"],
                &[
                    Each("requestParameters.policyArn"),
                    Each("requestParameters.userName"),
                ],
            ),
            Rule(
                &["CreateAccessKey"],
                &[
                    Each("responseElements.accessKey.accessKeyId"),
                    Each("requestParameters.userName"),
                ],
            ),
            Rule(
                &["CreateUser", "DeactivateMFADevice"],
                &[Each("requestParameters.userName")],
            ),
            Rule(
                &["DeleteVirtualMFADevice"],
                &[Each("requestParameters.serialNumber")],
            ),
            Rule(&["GetPolicy"], &[Each("requestParameters.policyArn")]),
            Rule(&["CreatePolicy"], &[Each("responseElements.policy.arn")]),
            Rule(&["ListRoles", "ListUsers"], &[ACCOUNT]),
        ],
    },
    Service {
        source: "kms.amazonaws.com",
        related: &[
            Each("requestParameters.keyId"),
            Each("responseElements.keyId"),
            Each("responseElements.keyMetadata.arn"),
            Each("responseElements.keyMetadata.keyId"),
        ],
        targets: &[Rule(&["DisableKey", "ScheduleKeyDeletion"], &[RESOURCES])],
    },
    Service {
        source: "lambda.amazonaws.com",
        related: &[
            Each("requestParameters.functionName"),
            Each("responseElements.functionArn"),
            Each("responseElements.functionName"),
            Each("responseElements.role"),
            Chain("responseElements.vpcConfig", &["securityGroupIds[]"]),
            Chain("responseElements.vpcConfig", &["subnetIds[]"]),
        ],
        targets: &[
            Rule(
                &["~AddPermission"],
                &[Each("requestParameters.functionName")],
            ),
            Rule(&["~ListFunctions"], &[ACCOUNT]),
        ],
    },
    Service {
        source: "logs.amazonaws.com",
        related: &[],
        targets: &[
            Rule(
                &["DeleteLogGroup"],
                &[Each("requestParameters.logGroupName")],
            ),
            Rule(
                &["DeleteLogStream"],
                &[Each("requestParameters.logStreamName")],
            ),
        ],
    },
    Service {
        source: "monitoring.amazonaws.com",
        related: &[],
        targets: &[Rule(
            &["DeleteAlarms"],
            &[Each("requestParameters.alarmNames[]")],
        )],
    },
    Service {
        source: "rds.amazonaws.com",
        related: &[
            Each("requestParameters.dBInstanceIdentifier"),
            Each("requestParameters.dBInstanceArn"),
            Each("responseElements.dBInstanceIdentifier"),
            Each("responseElements.dbInstanceArn"),
            Each("responseElements.dBSubnetGroup.vpcId"),
            Each("responseElements.dBSubnetGroup.subnets[].subnetIdentifier"),
            Each("responseElements.vpcSecurityGroups[].vpcSecurityGroupId"),
        ],
        targets: &[
            Rule(
                &["DeleteDBCluster", "ModifyDBCluster", "StopDBCluster"],
                &[Each("responseElements.dBClusterArn")],
            ),
            Rule(
                &[
                    "DeleteDBInstance",
                    "ModifyDBInstance",
                    "RestoreDBInstanceFromDBSnapshot",
                    "RestoreDBInstanceFromS3",
                    "StopDBInstance",
                ],
                &[Each("responseElements.dBInstanceArn")],
            ),
            Rule(
                &["DeleteGlobalCluster"],
                &[Each("responseElements.globalClusterArn")],
            ),
            Rule(
                &["ModifyDBClusterSnapshotAttribute"],
                &[Each("responseElements.dBClusterSnapshotIdentifier")],
            ),
            Rule(
                &["ModifyDBSnapshotAttribute"],
                &[Each("responseElements.dBSnapshotIdentifier")],
            ),
            Rule(&["DescribeDBInstances"], &[ACCOUNT]),
        ],
    },
    Service {
        source: "rolesanywhere.amazonaws.com",
        related: &[],
        targets: &[Rule(
            &["CreateTrustAnchor"],
            &[Each("responseElements.trustAnchor.trustAnchorArn")],
        )],
    },
    Service {
        source: "route53resolver.amazonaws.com",
        related: &[],
        targets: &[Rule(
            &["DeleteResolverQueryLogConfig"],
            &[Each("responseElements.resolverQueryLogConfig.arn")],
        )],
    },
    Service {
        source: "s3.amazonaws.com",
        related: &[Each("requestParameters.bucketName")],
        targets: &[
            Rule(
                &[
                    "CopyObject",
                    "PutBucketLogging",
                    "PutBucketVersioning",
                    "PutObject",
                    "GetBucketPolicy",
                    "ListObjects",
                    "HeadObject",
                    "GetObject",
                    "DeleteObject",
                    "DeleteBucket",
                ],
                &[RESOURCES],
            ),
            Rule(
                &["PutBucketReplication"],
                &[
                    RESOURCES,
                    Each("requestParameters.ReplicationConfiguration.Rule.Destination.Bucket"),
                ],
            ),
            Rule(&["ListBuckets"], &[ACCOUNT]),
        ],
    },
    Service {
        source: "secretsmanager.amazonaws.com",
        related: &[],
        targets: &[
            Rule(
                &["BatchGetSecretValue"],
                &[Each("requestParameters.secretIdList[]")],
            ),
            Rule(&["GetSecretValue"], &[Each("requestParameters.secretId")]),
        ],
    },
    Service {
        source: "signin.amazonaws.com",
        related: &[],
        targets: &[Rule(&["ConsoleLogin"], &[ACCOUNT])],
    },
    Service {
        source: "ssm.amazonaws.com",
        related: &[],
        targets: &[
            Rule(
                &[
                    "GetParameter",
                    "GetParameters",
                    "CreateControlChannel",
                    "OpenControlChannel",
                ],
                &[RESOURCES],
            ),
            Rule(&["StartSession"], &[Each("requestParameters.target")]),
            Rule(&["CreateDocument"], &[Each("requestParameters.name")]),
            Rule(
                &["TerminateSession", "OpenDataChannel"],
                &[Each("requestParameters.sessionId")],
            ),
            Rule(&["ListInstanceAssociations"], &[ACCOUNT]),
        ],
    },
    Service {
        source: "sts.amazonaws.com",
        related: &[
            Each("requestParameters.roleArn"),
            Each("sourceIdentity"),
            Each("additionalEventData.MFAIdentifier"),
            Each("responseElements.assumedRoleUser.arn"),
            Each("requestParameters.roleSessionName"),
            Each("responseElements.accessKeyId"),
        ],
        targets: &[
            Rule(&["AssumeRole"], &[Each("requestParameters.roleArn")]),
            Rule(&["GetCallerIdentity"], &[ACCOUNT]),
        ],
    },
    Service {
        source: "wafv2.amazonaws.com",
        related: &[
            Each("requestParameters.id"),
            Each("responseElements.summary"),
        ],
        targets: &[Rule(
            &["DeleteRuleGroup", "DeleteWebACL"],
            &[Each("requestParameters.id")],
        )],
    },
    Service {
        source: "sns.amazonaws.com",
        related: &[],
        targets: &[
            Rule(&["CreateTopic"], &[Each("responseElements.topicArn")]),
            Rule(
                &["Subscribe", "Publish"],
                &[Each("requestParameters.topicArn")],
            ),
        ],
    },
    Service {
        source: "bedrock.amazonaws.com",
        related: &[],
        targets: &[Rule(&["Converse"], &[Each("requestParameters.modelId")])],
    },
    Service {
        source: "elasticloadbalancing.amazonaws.com",
        related: &[],
        targets: &[Rule(&["DescribeLoadBalancers"], &[ACCOUNT])],
    },
    Service {
        source: "dynamodb.amazonaws.com",
        related: &[],
        targets: &[Rule(&["ListTables"], &[ACCOUNT])],
    },
];
