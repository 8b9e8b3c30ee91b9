console.log("hello from s3-deploy-pipe");
