// Placeholder until the function host lands (issue 2).
return 0;
