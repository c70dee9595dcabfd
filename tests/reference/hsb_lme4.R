# Reference figures for the HSB models, fitted by maximum likelihood in R (lme4 and nlme).
#
# Usage (from the repository root):
#   Rscript tests/reference/hsb_lme4.R [HSB_CSV] [OUT_JSON]
# Defaults: HSB_CSV = "../shared/data/hsb.csv", OUT_JSON = "tests/reference/hsb_lme4.json".
#
# No variable is centred; every column is used as given in the CSV. All fits are ML (REML = FALSE).
# Numbers are written at full double precision (jsonlite digits = NA); logLik is also written as
# a string with sprintf("%.6f").

suppressPackageStartupMessages({
  library(lme4)
  library(nlme)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
csv_path <- if (length(args) >= 1) args[[1]] else "../shared/data/hsb.csv"
out_path <- if (length(args) >= 2) args[[2]] else "tests/reference/hsb_lme4.json"

hsb <- read.csv(csv_path, colClasses = c(school = "character"))
hsb$school <- factor(hsb$school)
stopifnot(nrow(hsb) == 7185, nlevels(hsb$school) == 160)

versions <- list(
  R = R.version.string,
  lme4 = as.character(packageVersion("lme4")),
  nlme = as.character(packageVersion("nlme")),
  Matrix = as.character(packageVersion("Matrix")),
  jsonlite = as.character(packageVersion("jsonlite"))
)

design_md <- list(
  hsb_1 = list(logLik = -23214.496, n_params = 19L, BIC = 46597.707, elapsed_s = 0.81,
               source = "DESIGN.md, lme4 1.1-31"),
  hsb_ri = list(logLik = -23243.163, n_params = 8L, source = "DESIGN.md, lme4 1.1-31")
)

# Run `expr`, collecting warnings and messages (not silencing them from the record) and the
# elapsed time. Errors are caught and returned.
timed_fit <- function(expr) {
  warns <- character(0)
  msgs <- character(0)
  err <- NULL
  fit <- NULL
  tm <- system.time(
    fit <- tryCatch(
      withCallingHandlers(expr,
        warning = function(w) {
          warns <<- c(warns, conditionMessage(w))
          invokeRestart("muffleWarning")
        },
        message = function(m) {
          msgs <<- c(msgs, trimws(conditionMessage(m)))
          invokeRestart("muffleMessage")
        }),
      error = function(e) {
        err <<- conditionMessage(e)
        NULL
      })
  )
  list(fit = fit, warnings = warns, messages = msgs, error = err,
       elapsed_s = unname(tm[["elapsed"]]))
}

# Project-style names: var(u_1), var(u_x), cov(u_1,u_x), sigma2.
u_name <- function(v) if (v == "(Intercept)") "u_1" else paste0("u_", v)

fixed_table <- function(tab) {
  lapply(seq_len(nrow(tab)), function(i)
    list(name = rownames(tab)[i], estimate = unname(tab[i, 1]), se = unname(tab[i, 2])))
}

ll_info <- function(fit) {
  ll <- logLik(fit)
  list(logLik = as.numeric(ll), logLik_text = sprintf("%.6f", as.numeric(ll)),
       n_params = as.integer(attr(ll, "df")), BIC = BIC(fit), AIC = AIC(fit),
       n_obs = as.integer(nobs(fit)))
}

# Random-effect covariance matrix -> list of components (variances then covariances).
cov_components <- function(V) {
  nm <- colnames(V)
  out <- list()
  for (i in seq_along(nm)) {
    out[[length(out) + 1]] <- list(name = sprintf("var(%s)", u_name(nm[i])),
                                   term = nm[i], estimate = unname(V[i, i]))
  }
  if (length(nm) > 1) {
    for (i in 1:(length(nm) - 1)) for (j in (i + 1):length(nm)) {
      out[[length(out) + 1]] <- list(name = sprintf("cov(%s,%s)", u_name(nm[i]), u_name(nm[j])),
                                     term = paste(nm[i], nm[j], sep = ","),
                                     estimate = unname(V[i, j]))
    }
  }
  out
}

# ---------------------------------------------------------------------------------------- lme4
summarise_lmer <- function(res, formula_text, ref = NULL) {
  fit <- res$fit
  if (is.null(fit)) {
    return(list(package = "lme4", formula = formula_text, error = res$error,
                warnings = res$warnings, messages = res$messages, elapsed_s = res$elapsed_s))
  }
  V <- VarCorr(fit)$school
  V <- matrix(as.numeric(V), nrow(V), dimnames = dimnames(V))
  sigma2 <- sigma(fit)^2
  conv_msgs <- fit@optinfo$conv$lme4$messages
  out <- c(
    list(package = "lme4", call = paste(deparse(fit@call), collapse = " "),
         formula = formula_text, method = "ML"),
    ll_info(fit),
    list(n_clusters = as.integer(ngrps(fit)[["school"]]),
         fixed_effects = fixed_table(coef(summary(fit))),
         variance_components = c(cov_components(V),
                                 list(list(name = "sigma2", term = "Residual",
                                           estimate = sigma2))),
         random_effects_correlation = {
           C <- attr(VarCorr(fit)$school, "correlation")
           if (ncol(C) > 1) lapply(seq_len(ncol(C)), function(i) unname(C[i, ])) else NULL
         },
         elapsed_s = res$elapsed_s,
         singular = isSingular(fit),
         optimizer = fit@optinfo$optimizer,
         optimizer_conv = fit@optinfo$conv$opt,
         convergence_messages = if (is.null(conv_msgs)) character(0) else conv_msgs,
         warnings = res$warnings,
         messages = res$messages)
  )
  if (!is.null(ref)) {
    out$design_md <- ref
    out$matches_design_md_logLik_0.001 <- abs(out$logLik - ref$logLik) < 0.001
    out$n_params_matches_design_md <- out$n_params == ref$n_params
  }
  out
}

lmer_ml <- function(f) {
  timed_fit(lmer(f, data = hsb, REML = FALSE))
}

f_hsb_1 <- math ~ (female + ses) * (pracad + catholic + meanses) + (1 + female + ses | school)
f_hsb_ri <- math ~ female + ses + catholic + meanses + pracad + (1 | school)
f_hsb_1_v0 <- math ~ (female + ses) * (pracad + catholic + meanses) + (1 + female | school)

res_1 <- lmer_ml(f_hsb_1)
res_ri <- lmer_ml(f_hsb_ri)
res_v0 <- lmer_ml(f_hsb_1_v0)

models <- list()
models$hsb_1 <- summarise_lmer(res_1, paste(deparse(f_hsb_1), collapse = " "), design_md$hsb_1)
models$hsb_ri <- summarise_lmer(res_ri, paste(deparse(f_hsb_ri), collapse = " "), design_md$hsb_ri)
models$hsb_1_ses_var0 <- summarise_lmer(res_v0, paste(deparse(f_hsb_1_v0), collapse = " "))
models$hsb_1_ses_var0$note <- paste(
  "Variance of the ses slope fixed at 0 (no ses random slope); random intercept and female",
  "slope correlated.")

# Empirical Bayes school effects (conditional means and SDs) for hsb_1.
if (!is.null(res_1$fit)) {
  re <- ranef(res_1$fit, condVar = TRUE)$school
  pv <- attr(re, "postVar")  # q x q x n_schools
  terms <- colnames(re)
  eb <- lapply(seq_len(nrow(re)), function(k) {
    row <- list(school = rownames(re)[k])
    for (t in seq_along(terms)) {
      row[[sprintf("mean_%s", u_name(terms[t]))]] <- re[k, t]
      row[[sprintf("sd_%s", u_name(terms[t]))]] <- sqrt(pv[t, t, k])
    }
    row
  })
  models$hsb_1$empirical_bayes <- list(
    description = paste(
      "ranef(fit, condVar = TRUE)$school: conditional means of the school random effects",
      "(deviations from the fixed part) and conditional SDs sqrt(diag(postVar))."),
    terms = vapply(terms, u_name, ""),
    n_schools = nrow(re),
    schools = eb
  )
}

# ---------------------------------------------------------------------------------------- nlme
fixed_nlme <- math ~ (female + ses) * (pracad + catholic + meanses)
ctrl_1c <- lmeControl(maxIter = 200, msMaxIter = 200, opt = "optim")

lme_ml <- function(random, weights, control) {
  timed_fit(lme(fixed_nlme, data = hsb, random = random, weights = weights,
                method = "ML", control = control))
}

summarise_lme <- function(res, random_text, weights_text, control_text) {
  fit <- res$fit
  base <- list(package = "nlme", fixed = paste(deparse(fixed_nlme), collapse = " "),
               random = random_text, weights = weights_text, control = control_text,
               method = "ML")
  if (is.null(fit)) {
    return(c(base, list(converged = FALSE, error = res$error, warnings = res$warnings,
                        messages = res$messages, elapsed_s = res$elapsed_s)))
  }
  V <- as.matrix(getVarCov(fit))
  V <- matrix(as.numeric(V), nrow(V), dimnames = list(rownames(V), colnames(V)))
  sigma2 <- fit$sigma^2
  apv <- fit$apVar
  c(base, ll_info(fit), list(
    converged = TRUE,
    n_clusters = as.integer(fit$dims$ngrps[["school"]]),
    fixed_effects = fixed_table(summary(fit)$tTable),
    variance_components = c(cov_components(V),
                            list(list(name = "sigma2", term = "Residual (reference stratum)",
                                      estimate = sigma2))),
    varStruct_coef = as.list(coef(fit$modelStruct$varStruct, unconstrained = FALSE)),
    apVar = if (is.character(apv)) apv else "ok",
    n_iter = if (!is.null(fit$numIter)) as.integer(fit$numIter) else NULL,
    elapsed_s = res$elapsed_s,
    warnings = res$warnings,
    messages = res$messages
  ))
}

# Residual SD per observation, from the fitted variance function.
resid_var_obs <- function(fit) {
  (fit$sigma / varWeights(fit$modelStruct$varStruct))^2
}

# Try the brief's call; on failure (nlme errors when it does not converge) retry, then fall
# back to random = ~ 1 + female | school.
fit_nlme_model <- function(weights, weights_text, controls) {
  attempts <- list()
  chosen <- NULL
  for (rnd_text in c("~ 1 + female + ses | school", "~ 1 + female | school")) {
    rnd <- as.formula(rnd_text)
    for (cn in names(controls)) {
      res <- lme_ml(rnd, weights, controls[[cn]])
      attempts[[length(attempts) + 1]] <- list(
        random = rnd_text, control = cn, ok = !is.null(res$fit),
        error = res$error, warnings = res$warnings, elapsed_s = res$elapsed_s)
      if (!is.null(res$fit)) {
        chosen <- list(res = res, random = rnd_text, control = cn)
        break
      }
    }
    # Always also fit the 2-dimensional fallback only when the 3-dimensional one failed.
    if (!is.null(chosen)) break
  }
  list(chosen = chosen, attempts = attempts)
}

# hsb_1c: separate residual variance for catholic vs public schools.
w_1c <- varIdent(form = ~ 1 | catholic)
nl_1c <- fit_nlme_model(w_1c, "varIdent(form = ~ 1 | catholic)",
                        list("lmeControl(maxIter=200, msMaxIter=200, opt='optim')" = ctrl_1c))
if (is.null(nl_1c$chosen)) {
  models$hsb_1c <- list(package = "nlme", converged = FALSE, attempts = nl_1c$attempts)
} else {
  ch <- nl_1c$chosen
  m <- summarise_lme(ch$res, ch$random, "varIdent(form = ~ 1 | catholic)", ch$control)
  rv <- resid_var_obs(ch$res$fit)
  by_cath <- tapply(rv, hsb$catholic, function(v) { stopifnot(diff(range(v)) < 1e-8 * max(v)); v[1] })
  m$residual_variances <- list(
    list(name = "sigma2[catholic=0]", catholic = 0L, estimate = unname(by_cath[["0"]])),
    list(name = "sigma2[catholic=1]", catholic = 1L, estimate = unname(by_cath[["1"]])))
  m$residual_variances_note <- paste(
    "sigma^2 times the squared varIdent multiplier of each stratum; the reference stratum",
    "(multiplier 1) is the one not listed in varStruct_coef.")
  m$attempts <- nl_1c$attempts
  models$hsb_1c <- m
}

# hsb_1b: residual variance log-linear in female and ses.
w_1b <- varComb(varIdent(form = ~ 1 | female), varExp(form = ~ ses))
nl_1b <- fit_nlme_model(w_1b, "varComb(varIdent(form = ~ 1 | female), varExp(form = ~ ses))",
                        list("lmeControl() (defaults)" = lmeControl(),
                             "lmeControl(maxIter=200, msMaxIter=200, opt='optim')" = ctrl_1c))
if (is.null(nl_1b$chosen)) {
  models$hsb_1b <- list(package = "nlme", converged = FALSE, attempts = nl_1b$attempts)
} else {
  ch <- nl_1b$chosen
  fit <- ch$res$fit
  m <- summarise_lme(ch$res, ch$random,
                     "varComb(varIdent(form = ~ 1 | female), varExp(form = ~ ses))", ch$control)
  # log sigma2_ij = k0 + k1*female + k2*ses. Derived exactly from the fitted variance function:
  # the per-observation log variance is linear in female and ses, so a least-squares fit of it
  # on (1, female, ses) recovers the coefficients with zero residual.
  lv <- log(resid_var_obs(fit))
  lf <- lm(lv ~ female + ses, data = hsb)
  k <- unname(coef(lf))
  stopifnot(max(abs(residuals(lf))) < 1e-8)
  # The same from nlme's parameters: varIdent ratio r for the non-reference female level,
  # varExp t: sigma(ses) = sigma * r^[female level] * exp(t * ses).
  vc <- coef(fit$modelStruct$varStruct, unconstrained = FALSE)
  m$log_variance <- list(
    formula = "log sigma2_ij = k0 + k1*female + k2*ses",
    k0 = k[1], k1 = k[2], k2 = k[3],
    max_abs_residual_of_exact_fit = max(abs(residuals(lf))),
    nlme_parameters = list(sigma = fit$sigma, varStruct = as.list(vc)),
    note = paste(
      "From nlme: log variance = log sigma^2 + 2*log(ratio)*[female = non-reference level]",
      "+ 2*t*ses. k's obtained by an exact linear fit of the per-observation log variance",
      "(sigma / varWeights)^2 on (1, female, ses)."))
  m$attempts <- nl_1b$attempts
  models$hsb_1b <- m
}

out <- list(
  description = paste(
    "ML fits of the HSB models in R (lme4, nlme), variables uncentred, as reference figures",
    "for bayesmix tests. Made by tests/reference/hsb_lme4.R."),
  command = paste("Rscript tests/reference/hsb_lme4.R", csv_path, out_path),
  data = list(path = csv_path, n_obs = nrow(hsb), n_schools = nlevels(hsb$school)),
  versions = versions,
  created = format(Sys.time(), "%Y-%m-%dT%H:%M:%S%z"),
  models = models
)

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null",
                  na = "null"), out_path)
cat("wrote", out_path, "\n")
for (nm in names(models)) {
  mm <- models[[nm]]
  cat(sprintf("%-16s logLik %s  df %s  elapsed %.2f s  warnings: %s\n", nm,
              if (is.null(mm$logLik_text)) "NA" else mm$logLik_text,
              if (is.null(mm$n_params)) "NA" else mm$n_params,
              if (is.null(mm$elapsed_s)) NA else mm$elapsed_s,
              paste(c(mm$warnings, mm$messages), collapse = " | ")))
}
